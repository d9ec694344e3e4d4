"""A hub that does nothing but answer: the most the load generator can show on this machine.

A bare trio-websocket server that speaks just enough of the live protocol for ``bench.loadgen`` (a welcome,
then an ``ok`` for every command: tokens for pair and login, an empty result otherwise), each reply carrying
a snapshot padded to the size the real hub's frames average, decoded and encoded with msgspec as the hub
does. No store, no actors, no rules. Run by ``python -m bench --only sales`` beside the real hub: its
sales/s against the echo ceiling is the ratio a hub with no work of its own would reach with this load
generator on this machine, the upper bound ``sales_vs_ceiling_50`` is read against.

    python -m bench.nullhub serve --reply-bytes 1900   # prints {"port": N, "pid": P}, serves until stdin closes
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import msgspec
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket


class Command(msgspec.Struct):
    type: str
    id: str = ""


_decode = msgspec.json.Decoder(Command).decode
_encode = msgspec.json.Encoder().encode


def reply(cmd: Command, pad: str) -> bytes:
    if cmd.type == "pair":
        result: dict[str, str] = {"device_token": "null-device", "register_id": "NULL"}
    elif cmd.type in ("login", "hello"):
        result = {"session_token": "null-session", "register_id": "NULL"}
    else:
        result = {}
    snapshot = {"type": "snapshot", "topic": "register:NULL", "state": {"cart": None, "pad": pad}}
    return _encode({"type": "ok", "id": cmd.id, "result": result, "snapshot": snapshot})


async def serve(reply_bytes: int) -> None:
    bare = len(reply(Command("scan", "0123456789abcdef"), ""))
    pad = "x" * max(0, reply_bytes - bare)

    async def one(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            await ws.send_message(_encode({"type": "welcome", "protocol": 1}).decode())
            while True:
                cmd = _decode(await ws.get_message())
                await ws.send_message(reply(cmd, pad).decode())
        except ConnectionClosed:
            pass

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, one, "127.0.0.1", 0, None)
        print(json.dumps({"port": server.port, "pid": os.getpid()}), flush=True)
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.nullhub")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--reply-bytes", type=int, default=1900)
    args = p.parse_args(argv)
    trio.run(serve, args.reply_bytes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
