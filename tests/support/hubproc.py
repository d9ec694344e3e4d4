"""``storehub demo`` as a real subprocess, for the tests that kill it, fill its disk or upgrade its store:
start it on free ports and read its banner, drain its log pipe, read its store's tables from this process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import lmdb
import trio

from hub.store.env import decode

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@dataclass(frozen=True)
class DemoProcess:
    """A started demo: the process (its log on ``proc.stderr``) and what its banner announced."""

    proc: trio.Process
    ws_port: int
    http_port: int
    sandbox_url: str = ""  # only with the in-process state sandbox


async def start_demo(data: Path, *, sandbox: bool, start_s: float, log_level: str = "WARNING") -> DemoProcess:
    """``python -m hub.cli demo`` on ``data`` with free ports, up once its banner is out (within
    ``start_s``, else killed). Its log goes on into ``proc.stderr``: a long run drains it (``drain``)."""
    proc = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "demo",
            "--data",
            str(data),
            "--http-port",
            "0",
            "--ws-port",
            "0",
            "--no-devices",
            *([] if sandbox else ["--no-sandbox"]),
            "--log-level",
            log_level,
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    text = ""
    try:
        with trio.fail_after(start_s):
            while "Ctrl-C to stop" not in text:
                chunk = await proc.stderr.receive_some(4096)
                assert chunk, f"the demo exited early:\n{text}"
                text += chunk.decode(errors="replace")
    except BaseException:
        proc.kill()
        raise
    ports = banner_ports(text)
    assert ports is not None, text
    ws, http = ports
    url = ""
    if sandbox:
        url = re.search(r"State-system sandbox: (\S+)", text).group(1)  # type: ignore[union-attr]
    return DemoProcess(proc, ws, http, url)


def banner_ports(text: str) -> tuple[int, int] | None:
    """The WebSocket and HTTP ports a demo started on ``--ws-port 0 --http-port 0`` announces in its banner,
    None while the banner is not out yet."""
    ws = re.search(r"Live protocol: ws://[^:]+:(\d+)", text)
    http = re.search(r"Register:\s+http://[^:]+:(\d+)", text)
    if ws is None or http is None:
        return None
    return int(ws.group(1)), int(http.group(1))


async def drain(stream: Any) -> None:
    """Read a demo's log pipe to its end, so the hub never blocks on a full pipe."""
    try:
        while await stream.receive_some(65536):
            pass
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        pass


def read_table(data: Path, table: str, type_: type[T]) -> list[T]:
    """A table of the (running or stopped) hub's store, read from this process (LMDB allows it)."""
    env = lmdb.open(str(data), readonly=True, max_dbs=64, lock=True)
    try:
        db = env.open_db(table.encode(), create=False)
        with env.begin(db=db) as txn:
            return [decode(v, type_) for _, v in txn.cursor()]
    finally:
        env.close()
