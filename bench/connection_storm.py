"""A storm of idle WebSocket connections against a hub process: its memory before, at the peak and after
they closed, and how many the connection limit refused.

    python -m bench.connection_storm --connections 6000 --max-connections 8000

Prints one JSON object (RSS in MB from /proc). The hub runs as a user starts it (``storehub run``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

from bench.hubproc import HubProcess

CONFIG = """
[store]
name = "Storm"
licence = "C10-0000001-LIC"
jurisdiction = "CA"

[server]
host = "127.0.0.1"
http_port = 0
ws_port = 0
max_connections = {limit}
unpaired_idle_seconds = 600

[storage]
data_dir = "{data}"
map_size_mb = 64

[security]
id_hash_key_file = "{key}"

[[registers]]
id = "R1"
"""


async def _open(port: int) -> trio.SocketStream | None:
    """A WebSocket handshake, then nothing: an idle, unpaired connection. None when refused."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % port
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
    if b" 101" not in data.split(b"\r\n", 1)[0]:
        await stream.aclose()
        return None
    return stream


async def _storm(port: int, n: int, hub: HubProcess) -> dict[str, Any]:
    streams: list[trio.SocketStream] = []
    refused = 0
    limiter = trio.CapacityLimiter(200)

    async def one() -> None:
        nonlocal refused
        async with limiter:
            s = await _open(port)
        if s is None:
            refused += 1
        else:
            streams.append(s)

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
    await trio.sleep(1.0)  # let the hub settle with every connection open
    peak = hub.memory()
    for s in streams:
        await s.aclose()
    return {"accepted": len(streams), "refused": refused, "peak": peak}


def run(
    connections: int,
    max_connections: int,
    settle: float = 5.0,
    *,
    allocator: str = "malloc",
    settled: Callable[[float, float, float], bool] | None = None,
) -> dict[str, Any]:
    """``allocator``: "malloc" as ops/storehub.service runs the hub, "pymalloc" for Python's default.
    ``settled(before_mb, peak_mb, now_mb)``: stop waiting for the memory to come back as soon as it holds
    (looked at twice a second); ``settle`` seconds is then the longest wait."""
    if allocator == "malloc":
        os.environ["PYTHONMALLOC"] = "malloc"  # the hub process inherits it
    else:
        os.environ.pop("PYTHONMALLOC", None)
    with tempfile.TemporaryDirectory(prefix="storehub-storm-") as tmp:
        root = Path(tmp)
        cfg = root / "store.toml"
        # the hub binds port 0 itself and announces what it got: no port can be taken in between
        cfg.write_text(
            CONFIG.format(limit=max_connections, data=root / "data", key=root / "etc" / "id_hash.key")
        )
        hub = HubProcess(cfg, root / "hub.log").start()
        ws = urlsplit(hub.ws_url).port
        assert ws is not None, hub.ws_url
        try:
            time.sleep(1.0)  # blocking-ok: plain synchronous driver, no event loop here
            before = hub.memory()
            result = trio.run(_storm, ws, connections, hub)
            deadline = time.monotonic() + settle
            while True:
                # the hub notices the closes and gives memory back
                time.sleep(0.5 if settled else settle)  # blocking-ok: plain synchronous driver
                after = hub.memory()
                done = settled is not None and settled(
                    before["VmRSS"], result["peak"]["VmRSS"], after["VmRSS"]
                )
                if done or time.monotonic() >= deadline:
                    break
        finally:
            hub.stop()

    def mb(d: dict[str, float]) -> float:
        return round(d["VmRSS"], 1)

    return {
        "allocator": allocator,
        "connections": connections,
        "max_connections": max_connections,
        "accepted": result["accepted"],
        "refused": result["refused"],
        "rss_before_mb": mb(before),
        "rss_peak_mb": mb(result["peak"]),
        "rss_after_mb": mb(after),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.connection_storm", description=__doc__)
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--max-connections", type=int, default=500)
    p.add_argument("--settle", type=float, default=5.0)
    p.add_argument("--allocator", choices=["malloc", "pymalloc"], default="malloc")
    args = p.parse_args(argv)
    print(json.dumps(run(args.connections, args.max_connections, args.settle, allocator=args.allocator)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
