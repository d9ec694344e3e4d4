"""The live server's edge: TLS context, the Origin allow-list, connection and pairing limits, memory after storms."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import ipaddress
import ssl
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from hub.live.session import PairingThrottle, SessionConfig

if TYPE_CHECKING:
    from hub.app import Hub


def ssl_context(hub: Hub) -> ssl.SSLContext | None:
    s = hub.config.server
    if not s.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(s.tls_cert, s.tls_key)
    return ctx


def origin_allowed(hub: Hub, headers: list[tuple[bytes, bytes]], host_header: str = "") -> bool:
    h = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
    h.setdefault("host", host_header)
    origin = h.get("origin")
    if origin is None:
        return True  # not a browser: hub.client, bench, integrators (they still need a device token)
    allowed = hub.config.server.allowed_origins
    if allowed:
        return origin in allowed
    # default: the browser page must come from this hub's own HTTP listener: the configured host (or, on a
    # loopback or wildcard listener, a loopback or literal address) and the HTTP port. A DNS-rebinding page
    # (attacker.example resolving to the hub) names itself in Origin and Host, and is refused though they agree
    try:
        o = urlsplit(origin)
        o_port = o.port or (443 if o.scheme == "https" else 80)
        target = urlsplit("//" + h.get("host", "")).hostname
    except ValueError:
        return False
    if o.hostname is None or target is None or o.hostname != target or o_port != hub.http_port:
        return False
    return _is_own_host(hub, o.hostname)


def _is_own_host(hub: Hub, name: str) -> bool:
    """The configured host, or a loopback name when the hub listens on loopback or everywhere."""
    configured = hub.config.server.host
    loopback = {"127.0.0.1", "localhost", "::1", "[::1]"}
    if name == configured or name.strip("[]") == configured:
        return True
    if configured in ("0.0.0.0", "::", ""):
        # listening on every address: any literal IP of this machine is its own; names must be configured
        return _is_ip_literal(name) or name in loopback
    return configured in loopback and name in loopback


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


_LIBC = ctypes.util.find_library("c")
_libc = ctypes.CDLL(_LIBC) if _LIBC else None  # glibc's malloc_trim; absent elsewhere (then nothing to do)


def return_memory() -> None:
    """After a connection storm, hand freed heap back to the OS (glibc keeps it otherwise). Runs off the trio
    thread; the collection first, on the trio thread, frees the closed connections' reference cycles."""
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


class Gate:
    """Per-server limits of the live protocol: open connections, pairing throttle, memory after storms."""

    def __init__(self, hub: Hub) -> None:
        s, sec = hub.config.server, hub.config.security
        self.open = 0
        self.peak = 0
        self.max_connections = s.max_connections
        self.pairing = PairingThrottle(sec.pairing_attempts_per_connection, sec.pairing_attempts_per_address)
        self.session_config = SessionConfig(
            store_name=hub.config.store.name,
            boot_id=hub.boot_id,
            demo=s.demo,
            max_json_depth=s.max_json_depth,
            unpaired_idle_seconds=s.unpaired_idle_seconds,
            staff_idle=timedelta(minutes=hub.config.store.session_idle_minutes),
        )
        self._message_seconds = hub.metrics.message_seconds
        self._timers: dict[str, Any] = {}

    def message_timer(self, kind: str) -> Any:
        """The ``message_seconds`` histogram of one kind of message, its labels bound once."""
        timer = self._timers.get(kind)
        if timer is None:
            timer = self._timers[kind] = self._message_seconds.labels(kind)
        return timer

    def closed(self) -> None:
        self.open -= 1

    async def return_memory_after_storms(self, every: float = 2.0) -> None:
        """Once many connections have closed since the last look (a storm passed), give the memory back.
        Freed heap goes back to the OS fully when the hub runs with PYTHONMALLOC=malloc (ops/storehub.service;
        bench/connection_storm.py measures both)."""
        # looks left after a storm: a look that lands mid-storm must not be the last (under load the hub
        # takes seconds to notice every close), and a closed connection's memory is freed a little after
        # it counts as closed (trio-websocket's own closing ends after the handler): trim again on the next
        # few looks, and as long as connections keep closing
        after_storm = 0
        while True:
            await trio.sleep(every)
            closed = self.peak - self.open
            if closed >= 128 or (after_storm and closed > 0):
                after_storm = 3
            elif after_storm:
                after_storm -= 1
            else:
                continue
            self.peak = self.open
            gc.collect()  # closed connections sit in reference cycles (nurseries, tasks) until collected
            await trio.to_thread.run_sync(return_memory)
