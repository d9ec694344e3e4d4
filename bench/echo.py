"""A bare trio-websocket echo server and its clients, each in its own process: the ceiling the hub's live
protocol runs under on this machine.

    python -m bench.echo serve                  # prints {"port": N} then echoes until stdin closes
    python -m bench.echo clients --port N --clients 20 --size 300 --seconds 5 --max-count 20000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, open_websocket_url, serve_websocket

from bench.stats import summary


async def serve() -> None:
    async def echo(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except ConnectionClosed:
            pass

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, echo, "127.0.0.1", 0, None)
        print(json.dumps({"port": server.port}), flush=True)
        # the parent closes our stdin to stop us
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
        nursery.cancel_scope.cancel()


async def clients(port: int, n: int, size: int, seconds: float, max_count: int, warmup: int = 20) -> dict:
    payload = json.dumps({"type": "scan", "id": "c1", "data": "x" * max(0, size - 36)})[:size]
    rtts: list[list[float]] = [[] for _ in range(n)]
    ready = trio.Event()
    waiting = [n]
    start_end = [0.0, 0.0]

    async def one(i: int) -> None:
        async with open_websocket_url(f"ws://127.0.0.1:{port}/", message_queue_size=4) as ws:
            for _ in range(warmup):
                await ws.send_message(payload)
                await ws.get_message()
            waiting[0] -= 1
            if waiting[0] == 0:
                start_end[0] = time.perf_counter()
                start_end[1] = start_end[0] + seconds
                ready.set()
            await ready.wait()
            mine = rtts[i]
            pc = time.perf_counter
            while len(mine) < max_count and pc() < start_end[1]:
                t0 = pc()
                await ws.send_message(payload)
                await ws.get_message()
                mine.append(pc() - t0)

    with trio.fail_after(seconds + 60):
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)
    elapsed = time.perf_counter() - start_end[0]
    flat = [x for r in rtts for x in r]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "clients": n,
        "size": len(payload),
        "round_trips": len(flat),
        "seconds": elapsed,
        "round_trips_per_s": len(flat) / elapsed if elapsed > 0 else 0.0,
        "client_cpu_s": ru.ru_utime + ru.ru_stime,
        **summary(flat),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.echo")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve")
    c = sub.add_parser("clients")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--clients", type=int, default=1)
    c.add_argument("--size", type=int, default=300)
    c.add_argument("--seconds", type=float, default=5.0)
    c.add_argument("--max-count", type=int, default=100_000)
    args = p.parse_args(argv)
    if args.cmd == "serve":
        trio.run(serve)
        return 0
    result = trio.run(clients, args.port, args.clients, args.size, args.seconds, args.max_count)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
