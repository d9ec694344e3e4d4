"""Identity at the edges (issue 11): pairing codes that answer once and are throttled, no secret in any
table, screens that start logged out, REST tokens only in headers, the Origin checked against the
configured host and port, the ID-hash key kept outside the store."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import httpx
import pytest
import trio

from hub.app import Hub
from hub.audit import AuditEntry
from hub.client import ClientError, connect
from hub.config import StoreConfig
from hub.store.env import Store, decode
from hub.wiring import Features, SaleOptions
from tests.conftest import DEMO_PAIRING, PINS, make_config, ws_url


def audit_actions(hub: Hub) -> list[AuditEntry]:
    with hub.store.read() as txn:
        return [decode(v, AuditEntry) for _, v in txn.cursor(db=hub.store.db("audit"))]


def every_stored_byte(store: Store) -> list[tuple[str, bytes, bytes]]:
    """(table, key, value) of every record of every named table in the environment."""
    out: list[tuple[str, bytes, bytes]] = []
    with store.env.begin() as txn:
        names = [bytes(k) for k, _ in txn.cursor()]
    for name in names:
        db = store.env.open_db(name, create=False)
        with store.env.begin(db=db) as txn:
            out += [(name.decode(), bytes(k), bytes(v)) for k, v in txn.cursor()]
    return out


def find_secret(store: Store, *needles: bytes) -> list[str]:
    return [f"{t}:{k!r}" for t, k, v in every_stored_byte(store) for n in needles if n in k or n in v]


def code_forms(code: str) -> tuple[bytes, ...]:
    # an 8-digit code is as msgpack fixstr or in a JSON reply; bare digits also occur inside hex hashes
    return (b"\xa8" + code.encode(), f'"{code}"'.encode())


async def test_pair_replay_refused_and_no_secret_in_any_table(hub: Hub) -> None:
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            first = await c.request("pair", id="pair-1", code=DEMO_PAIRING["R1"], device_name="front")
            token = first["device_token"]
            await c.login("maria", PINS["maria"])
            session = c.session_token
            created = await c.request("create_pairing_code", register_id="R2")
            assert created["code"]
        for msg_id in ("pair-1", "pair-2"):  # a used code, with the original id or another
            async with connect(ws_url(hub)) as c2:
                with pytest.raises(ClientError) as e:
                    await c2.request("pair", id=msg_id, code=DEMO_PAIRING["R1"], device_name="front")
                assert e.value.code == "bad_pairing_code"
                assert token not in str(e.value.frame)
    assert session is not None
    leaks = find_secret(
        hub.store,
        token.encode(),
        session.encode(),
        *code_forms(created["code"]),
        *code_forms(DEMO_PAIRING["R2"]),  # not yet used: kept as a hash only
    )
    assert leaks == []
    assert hub.store.count("devices") == 1
    failed = [e for e in audit_actions(hub) if e.action == "pairing_failed"]
    assert len(failed) == 2 and failed[0].detail["peer"] == "127.0.0.1"


async def test_pairing_attempts_are_throttled_per_connection_and_address(
    hub_factory: object, config: StoreConfig
) -> None:
    config.security.pairing_attempts_per_connection = 5
    config.security.pairing_attempts_per_address = 8
    hub: Hub = await hub_factory(config)  # type: ignore[operator]
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            codes = []
            for i in range(7):
                with pytest.raises(ClientError) as e:
                    await c.request("pair", code=f"{i:08d}")
                codes.append(e.value.code)
            assert codes == ["bad_pairing_code"] * 5 + ["rate_limited"] * 2
        async with connect(ws_url(hub)) as c:
            for _ in range(3):  # 5 + 3 = the address's 8 a minute
                with pytest.raises(ClientError) as e:
                    await c.request("pair", code="99999999")
                assert e.value.code == "bad_pairing_code"
            # from here the address is throttled, the right code included
            with pytest.raises(ClientError) as e:
                await c.request("pair", code=DEMO_PAIRING["R1"])
            assert e.value.code == "rate_limited"
    failed = [e for e in audit_actions(hub) if e.action == "pairing_failed"]
    # every wrong code, and the first throttled attempt of each connection (a flood is not a flood of writes)
    assert len(failed) == 10
    assert sum(e.detail["reason"] == "too many attempts" for e in failed) == 2
    assert hub.store.count("devices") == 0


async def test_a_new_screen_starts_logged_out_and_shares_only_after_a_pin(hub: Hub) -> None:
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c1, connect(ws_url(hub)) as c2, connect(ws_url(hub)) as c3:
            await c1.pair(DEMO_PAIRING["R1"])
            await c1.login("maria", PINS["maria"])
            code = (await c1.request("create_pairing_code", register_id="R1"))["code"]
            # a second screen paired for the same register: logged out, though maria is logged in
            await c2.pair(code)
            with pytest.raises(ClientError) as e:
                await c2.request("report_incident", category="x", description="second screen")
            assert e.value.code == "not_logged_in"
            # hello without a session token: this screen is logged out, the others are not
            assert c2.device_token is not None
            hello = await c3.hello(c2.device_token)
            assert hello["resumed"] is False and hello["staff"] is None
            await c1.request("report_incident", category="x", description="first screen still in")
            with pytest.raises(ClientError) as e:
                await c3.request("report_incident", category="x", description="third screen")
            assert e.value.code == "not_logged_in"
            # maria types her PIN on the second screen: both screens share her session
            await c2.login("maria", PINS["maria"])
            await c2.request("report_incident", category="x", description="second screen in")
            await c1.request("report_incident", category="x", description="first screen still in")
            # a resumed token opens the third screen
            assert c2.session_token is not None
            hello = await c3.hello(c2.device_token, c2.session_token)
            assert hello["resumed"] is True and hello["staff"]["id"] == "maria"
            await c3.request("report_incident", category="x", description="third screen in")
            # another person takes the register over: the other screens need a PIN again
            await c2.login("ana", PINS["ana"])
            with pytest.raises(ClientError) as e:
                await c1.request("report_incident", category="x", description="maria's screen")
            assert e.value.code == "not_logged_in"
            await c2.request("report_incident", category="x", description="ana's screen")


async def test_rest_refuses_a_token_in_the_url(hub: Hub) -> None:
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("maria", PINS["maria"])
            token = c.session_token
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
                r = await http.get(f"/api/devices?token={token}")
                assert r.status_code == 400 and r.json()["code"] == "token_in_url"
                r = await http.get(
                    f"/api/devices?token={token}", headers={"authorization": f"Bearer {token}"}
                )
                assert r.status_code == 400
                r = await http.get("/api/devices", headers={"authorization": f"Bearer {token}"})
                assert r.status_code == 200


def test_back_office_builds_no_token_links() -> None:
    root = Path(__file__).resolve().parents[2] / "web_ui"
    for js in root.rglob("*.js"):
        if "vendor" in js.parts:
            continue
        assert "token=" not in js.read_text(), f"{js} puts a token in a URL"


async def _handshake(port: int, host: str, origin: str) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            b"GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: %s\r\n\r\n"
            % (host.encode(), origin.encode())
        )
        data = b""
        while b"\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0]


async def test_dns_rebinding_handshake_is_refused(hub: Hub) -> None:
    with trio.fail_after(10):
        own = f"127.0.0.1:{hub.ws_port}"
        # attacker.example resolved to the hub: Origin and Host agree with each other, not with the hub
        status = await _handshake(
            hub.ws_port, f"attacker.example:{hub.ws_port}", f"http://attacker.example:{hub.http_port}"
        )
        assert b" 403" in status
        # the right host on another port is another origin; the hub's own page is accepted
        assert b" 403" in await _handshake(hub.ws_port, own, f"http://127.0.0.1:{hub.http_port + 1}")
        assert b" 101" in await _handshake(hub.ws_port, own, f"http://127.0.0.1:{hub.http_port}")
        assert b" 101" in await _handshake(
            hub.ws_port, f"localhost:{hub.ws_port}", f"http://localhost:{hub.http_port}"
        )


async def test_id_hash_key_is_generated_outside_the_store(
    hub_factory: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from hub.sale.inventory import ID_HASH_KEY

    cfg = make_config(tmp_path / "data")
    cfg.security.id_hash_key_file = str(tmp_path / "etc" / "id_hash.key")
    hub: Hub = await hub_factory(cfg, features=Features(sale=SaleOptions()))  # type: ignore[operator]
    key_file = Path(cfg.security.id_hash_key_file)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert bytes.fromhex(key_file.read_text().strip()) == hub.services.sale.id_key
    with hub.store.read() as txn:
        assert txn.get(ID_HASH_KEY, db=hub.store.db("meta")) is None
    assert "beside the data" not in caplog.text


async def test_a_key_kept_in_an_older_store_moves_out_and_keeps_working(
    hub_factory: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from hub.sale.inventory import ID_HASH_KEY

    data = tmp_path / "data"
    old = Store(data, map_size=64 << 20)
    with old.env.begin(write=True) as txn:
        txn.put(ID_HASH_KEY, b"k" * 32, db=old.db("meta"))
    old.close()
    cfg = make_config(data)  # no key file configured: the default sits in the data directory
    caplog.set_level(logging.WARNING)
    hub: Hub = await hub_factory(cfg, features=Features(sale=SaleOptions()))  # type: ignore[operator]
    assert hub.services.sale.id_key == b"k" * 32  # customers' hashes still match
    assert (data / "id_hash.key").read_text().strip() == (b"k" * 32).hex()
    with hub.store.read() as txn:
        assert txn.get(ID_HASH_KEY, db=hub.store.db("meta")) is None
    assert "beside the data" in caplog.text
