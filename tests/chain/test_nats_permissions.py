"""Each store's NATS credentials: it may publish its own events, read its own catalogue key, and nothing of
another store's; a wrong password is refused. Against a real nats-server with the config HQ generates."""

from __future__ import annotations

import asyncio
import gc
import warnings
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
import nats.js.errors
import pytest
from nats.js.api import KeyValueConfig, StreamConfig

from hub.chain import names
from hub.hq.localservers import NatsServer
from tests.chain.conftest import CHAIN, make_nats


async def _connect(server: NatsServer, user: str, password: str, errors: list[str]) -> Any:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    return await nats.connect(
        server.url,
        user=user,
        password=password,
        inbox_prefix=names.inbox_prefix(user) if user != "hq" else "_INBOX",
        error_cb=on_error,
        allow_reconnect=False,
        connect_timeout=2,
    )


def _check(tmp: Path) -> None:
    # nats-py leaves the refused connection's socket to the garbage collector: collect it here, quietly
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        asyncio.run(_scenario(tmp))
        gc.collect()


async def _scenario(tmp: Path) -> None:
    server = make_nats(tmp, ["north", "south"])
    try:
        hq_errors: list[str] = []
        hq = await _connect(server, "hq", server.hq_password, hq_errors)
        js = hq.jetstream(timeout=5)
        await js.add_stream(
            StreamConfig(name=names.stream_name(CHAIN), subjects=names.stream_subjects(CHAIN))
        )
        kv = await js.create_key_value(KeyValueConfig(bucket=names.catalogue_bucket(CHAIN), direct=True))
        await kv.put("north", b'{"version": 1}')
        await kv.put("south", b'{"version": 7}')

        errors: list[str] = []
        north = await _connect(server, "north", server.passwords["north"], errors)
        njs = north.jetstream(timeout=2)
        # its own subject: JetStream stores it and acknowledges
        ack = await njs.publish(
            names.events_subject(CHAIN, "north"), b"{}", headers={"Nats-Msg-Id": "north:1"}
        )
        assert ack.seq == 1
        # a resend after a crash carries the same message id: JetStream's duplicate window drops it
        again = await njs.publish(
            names.events_subject(CHAIN, "north"), b"{}", headers={"Nats-Msg-Id": "north:1"}
        )
        assert again.duplicate and again.seq == 1
        # as another store: refused by the server (no ack ever comes; the client hears a permissions violation)
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.Error)):
            await njs.publish(names.events_subject(CHAIN, "south"), b"{}", headers={"Nats-Msg-Id": "south:1"})
        await asyncio.sleep(0.2)
        assert any("permissions violation" in e.lower() and "south" in e for e in errors), errors
        # its own catalogue key, yes; another store's, no
        own = await njs.get_msg(
            "KV_" + names.catalogue_bucket(CHAIN),
            subject=f"$KV.{names.catalogue_bucket(CHAIN)}.north",
            direct=True,
        )
        assert msgspec.json.decode(own.data) == {"version": 1}
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.Error)):
            await njs.get_msg(
                "KV_" + names.catalogue_bucket(CHAIN),
                subject=f"$KV.{names.catalogue_bucket(CHAIN)}.south",
                direct=True,
            )
        # it cannot listen to the chain's traffic, nor manage streams
        errors.clear()
        await north.subscribe(f"chain.{CHAIN}.>")
        await north.flush()
        await asyncio.sleep(0.2)
        assert any("permissions violation" in e.lower() for e in errors), errors
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.Error)):
            await njs.delete_stream(names.stream_name(CHAIN))
        # only the one message north was allowed to send is in the stream
        info = await js.stream_info(names.stream_name(CHAIN))
        assert info.state.messages == 1
        await north.close()
        await hq.close()
        refused = []
        try:
            await _connect(server, "north", "not-the-password", refused)
        except Exception as exc:  # nats-py raises its own error after the server's -ERR
            refused.append(str(exc))
        assert any("authorization" in e.lower() for e in refused), refused
    finally:
        server.stop()


def test_a_store_cannot_publish_as_another_store(tmp_path: Path) -> None:
    _check(tmp_path)
