"""The chain link: a child process of the hub that ships the store's events to JetStream and fetches its
catalogue document from HQ.

Why a child process (and not trio-asyncio inside the hub): nats-py is asyncio-only, and the hub is one trio
loop that must answer every scan in milliseconds. A separate process on anyio's asyncio backend can never
block or crash that loop, reads the store read-only (LMDB allows readers in other processes, so it needs no
help from the writer), and the hub supervises it like an actor: restarted with backoff when it dies. Selling
never waits on it: the audit log is the queue, and the link only ever reads it.

Protocol with the hub: the hub writes one JSON line of settings on stdin; the link writes JSON lines on
stdout: ``{"t": "acked", "seq": N, "at": ...}`` after JetStream acknowledged every event up to N, ``{"t":
"catalogue", "doc": {...}}`` when HQ has a newer catalogue for this store, ``{"t": "link", "up": bool,
"error": "..."}`` when the connection changes. The acknowledged position is kept in a file beside the store
(written and fsynced before it is reported), so a restart resumes where JetStream last said yes; an event
resent after a crash carries the same ``Nats-Msg-Id`` and JetStream's duplicate window drops it (HQ is
exactly-once anyway: it keys events by store and sequence).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import lmdb
import msgspec

from hub.chain import names
from hub.chain.catalogue import CatalogueDoc
from hub.chain.events import catalogue_version, encode_json, last_seq, read_events, read_status
from hub.store.migrations import open_for_reading


class LinkSettings(msgspec.Struct, kw_only=True):
    data_dir: str
    map_size: int
    time_zone: str
    chain: str
    store_id: str
    nats_url: str
    user: str = ""
    password: str = ""
    creds_file: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    batch: int = 256
    poll_seconds: float = 0.25
    catalogue_poll_seconds: float = 2.0
    status_seconds: float = 5.0


class Position(msgspec.Struct, kw_only=True):
    seq: int = 0  # every event up to here is acknowledged by JetStream
    acked_at: datetime | None = None


def position_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "chain" / "position.json"


def load_position(data_dir: str | Path) -> Position:
    try:
        return msgspec.json.decode(position_path(data_dir).read_bytes(), type=Position)
    except (FileNotFoundError, msgspec.DecodeError):
        return Position()


def save_position(data_dir: str | Path, pos: Position) -> None:
    """Atomic and durable: write a temporary file, fsync it, rename it over the old one, fsync the dir."""
    path = position_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(msgspec.json.encode(pos))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tls_context(s: LinkSettings) -> ssl.SSLContext | None:
    if not (s.tls_ca or s.tls_cert or s.nats_url.startswith("tls://")):
        return None
    ctx = ssl.create_default_context(cafile=s.tls_ca or None)
    if s.tls_cert:
        ctx.load_cert_chain(s.tls_cert, s.tls_key or None)
    return ctx


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields, default=str) + "\n")
    sys.stdout.flush()


class Link:
    def __init__(self, s: LinkSettings) -> None:
        self.s = s
        self.zone = ZoneInfo(s.time_zone)
        self.store = open_for_reading(s.data_dir, map_size=s.map_size)
        self.pos = load_position(s.data_dir)
        self.subject = names.events_subject(s.chain, s.store_id)
        self.forwarded: tuple[int, float] = (0, 0.0)
        self.status_sent: tuple[int, int] = (-1, -1)
        self.status_at = 0.0

    def read(self, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except lmdb.MapResizedError:
            # the hub grew its map: adopt the new size (no transaction of ours is open here)
            self.store.env.set_mapsize(0)
            return fn(*args, **kw)

    async def connect(self) -> Any:
        import nats

        s = self.s

        async def on_error(exc: Exception) -> None:
            say(t="link", up=False, error=f"{type(exc).__name__}: {exc}")

        async def on_disconnect() -> None:
            say(t="link", up=False, error="disconnected")

        async def on_reconnect() -> None:
            say(t="link", up=True)

        opts: dict[str, Any] = {
            "servers": [s.nats_url],
            "name": f"storehub-{s.chain}-{s.store_id}",
            "inbox_prefix": names.inbox_prefix(s.store_id),
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "connect_timeout": 2,
            "error_cb": on_error,
            "disconnected_cb": on_disconnect,
            "reconnected_cb": on_reconnect,
        }
        if s.user:
            opts["user"], opts["password"] = s.user, s.password
        if s.creds_file:
            opts["user_credentials"] = s.creds_file
        tls = tls_context(s)
        if tls is not None:
            opts["tls"] = tls
        delay = 0.5
        while True:
            try:
                nc = await nats.connect(**opts)
            except Exception as exc:  # no server yet (WAN down, HQ restarting): keep trying
                say(t="link", up=False, error=f"{type(exc).__name__}: {exc}")
                await anyio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            say(t="link", up=True)
            return nc

    async def ship(self, js: Any) -> None:
        s = self.s
        delay = 0.25
        while True:
            events = self.read(
                read_events, self.store, s.store_id, self.zone, after=self.pos.seq, limit=s.batch
            )
            if not events:
                if self.pos.seq > self.read(last_seq, self.store):
                    # the log is shorter than what HQ already has: the store was restored from a backup.
                    # Shipping would reuse sequence numbers HQ holds with other content, so stop and say so.
                    say(
                        t="link",
                        up=False,
                        error=f"the audit log ends before the acknowledged position {self.pos.seq}: "
                        "restored from a backup? shipping stopped; see the README (a chain of stores)",
                    )
                    await anyio.sleep(30)
                    continue
                await anyio.sleep(s.poll_seconds)
                continue
            try:
                await asyncio.gather(
                    *(
                        js.publish(
                            self.subject,
                            encode_json(e),
                            headers={"Nats-Msg-Id": names.msg_id(s.store_id, e.seq)},
                            timeout=5,
                        )
                        for e in events
                    )
                )
            except Exception as exc:  # unreachable, no stream yet, timeout: the log keeps them; try again
                say(t="link", up=False, error=f"publish: {type(exc).__name__}: {exc}")
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.25
            self.pos = Position(seq=events[-1].seq, acked_at=datetime.now(UTC))
            save_position(s.data_dir, self.pos)
            say(t="acked", seq=self.pos.seq, at=self.pos.acked_at)

    async def status(self, js: Any) -> None:
        """Inventory and state-channel health, latest-wins, whenever they may have changed."""
        s = self.s
        while True:
            await anyio.sleep(min(s.status_seconds, 1.0))
            key = (self.read(last_seq, self.store), self.read(catalogue_version, self.store))
            if key == self.status_sent and time.monotonic() - self.status_at < 60:
                continue
            if time.monotonic() - self.status_at < s.status_seconds and self.status_sent != (-1, -1):
                continue
            st = self.read(read_status, self.store, s.store_id)
            try:
                await js.publish(names.status_subject(s.chain, s.store_id), encode_json(st), timeout=5)
            except Exception as exc:
                say(t="link", up=False, error=f"status: {type(exc).__name__}: {exc}")
                continue
            self.status_sent, self.status_at = key, time.monotonic()

    async def catalogue(self, js: Any) -> None:
        import nats.js.errors

        s = self.s
        stream = "KV_" + names.catalogue_bucket(s.chain)
        subject = f"$KV.{names.catalogue_bucket(s.chain)}.{s.store_id}"
        while True:
            try:
                raw = await js.get_msg(stream, subject=subject, direct=True)
            except nats.js.errors.NotFoundError:
                raw = None
            except Exception as exc:  # HQ away: keep selling on the version we have
                say(t="link", up=False, error=f"catalogue: {type(exc).__name__}: {exc}")
                raw = None
            if raw is not None and raw.data:
                try:
                    doc = msgspec.json.decode(raw.data, type=CatalogueDoc)
                except msgspec.DecodeError as exc:
                    say(t="link", up=True, error=f"catalogue document refused: {exc}")
                    doc = None
                if doc is not None and doc.version > self.read(catalogue_version, self.store):
                    last, when = self.forwarded
                    # hand it over once; again if the hub has not applied it after a while (it restarted)
                    if doc.version != last or time.monotonic() - when > 10:
                        say(t="catalogue", doc=msgspec.to_builtins(doc))
                        self.forwarded = (doc.version, time.monotonic())
            await anyio.sleep(s.catalogue_poll_seconds)

    async def watch_parent(self) -> None:
        parent = os.getppid()
        while os.getppid() == parent:
            await anyio.sleep(0.5)
        raise SystemExit(0)  # the hub is gone: so are we (its restart starts a new link)

    async def run(self) -> None:
        nc = await self.connect()
        js = nc.jetstream(timeout=5)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.watch_parent)
                tg.start_soon(self.ship, js)
                tg.start_soon(self.status, js)
                tg.start_soon(self.catalogue, js)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()


def main() -> int:
    line = sys.stdin.readline()
    if not line:
        return 2
    settings = msgspec.json.decode(line.encode(), type=LinkSettings)
    anyio.run(Link(settings).run, backend="asyncio")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
