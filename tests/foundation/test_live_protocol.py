"""The live protocol over a real socket: pairing, login, lockout, malformed input, oversize frames, retries."""

from __future__ import annotations

import json

import pytest
import trio
from trio_websocket import ConnectionClosed

from hub.app import Hub
from hub.client import ClientError, connect
from tests.conftest import DEMO_PAIRING, PINS, ws_url


async def test_pair_login_and_snapshot(hub: Hub) -> None:
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            assert c.welcome["store"] == "Test Store"
            res = await c.pair(DEMO_PAIRING["R1"])
            assert res["register_id"] == "R1" and len(res["device_token"]) > 30
            with pytest.raises(ClientError) as e:
                await c.request("report_incident", category="x", description="y")
            assert e.value.code == "not_logged_in"
            out = await c.login("ana", PINS["ana"])
            assert out["staff"]["role"] == "budtender"
            snap = await c.wait_snapshot(lambda s: s["staff"] is not None)
            assert snap["state"]["staff"]["id"] == "ana"
        # a pairing code enrols one register once
        async with connect(ws_url(hub)) as c2:
            with pytest.raises(ClientError) as e:
                await c2.pair(DEMO_PAIRING["R1"])
            assert e.value.code == "bad_pairing_code"


async def test_nothing_but_pairing_and_login_before_login(hub: Hub) -> None:
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            with pytest.raises(ClientError) as e:
                await c.request("report_incident", category="x", description="y")
            assert e.value.code == "not_paired"
            await c.pair(DEMO_PAIRING["R2"])
            with pytest.raises(ClientError) as e:
                await c.request("logout")
            assert e.value.code == "not_logged_in"


async def test_five_wrong_pins_lock_the_account(hub: Hub) -> None:
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            for i in range(5):
                with pytest.raises(ClientError) as e:
                    await c.login("tom", "9999")
                assert e.value.code == ("bad_login" if i < 4 else "locked_out")
            # the right PIN is refused too while locked
            with pytest.raises(ClientError) as e:
                await c.login("tom", PINS["tom"])
            assert e.value.code == "locked_out" and "locked" in e.value.message
            # other staff are not affected
            await c.login("ana", PINS["ana"])
    with hub.store.read() as txn:
        from hub.audit import AuditEntry
        from hub.store.env import decode

        actions = [decode(v, AuditEntry).action for _, v in txn.cursor(db=hub.store.db("audit"))]
    assert actions.count("login_failed") == 5
    assert "lockout" in actions and "login_refused_locked" in actions and "login" in actions


async def test_malformed_messages_get_errors_and_connection_stays_up(hub: Hub) -> None:
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.send_raw("{not json")
            await c.send_raw("[1,2]")
            frame = await c.request_frame("no_such_thing")
            assert frame["type"] == "error" and frame["code"] == "unknown_type"
            frame = await c.request_frame("login", staff=5, pin="1234")
            assert frame["code"] == "invalid" and frame["field"] == "staff"
            frame = await c.request_frame("login", staff="ana")
            assert frame["code"] == "invalid" and frame["field"] == "pin" and "missing" in frame["message"]
            frame = await c.request_frame("login", staff="ana", pin="1111", extra=True)
            assert frame["field"] == "extra"
            await trio.sleep(0.2)
            codes = [f["code"] for f in c.unmatched if f["type"] == "error"]
            assert codes == ["malformed", "malformed"]
            # still answering
            assert "server_time" in await c.request("ping")


async def test_oversize_frame_closes_with_1009(hub: Hub) -> None:
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            await c.send_raw(json.dumps({"type": "ping", "id": "big", "pad": "x" * 70000}))
            with pytest.raises(ConnectionClosed):
                await c.request("ping")
            assert c.closed_reason.code == 1009
        # the server is still serving others
        async with connect(ws_url(hub)) as c:
            assert "server_time" in await c.request("ping")


async def test_repeated_id_is_applied_once(hub: Hub) -> None:
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("ana", PINS["ana"])
            token, session = c.device_token, c.session_token
            first = await c.request(
                "report_incident", id="inc-1", category="printer", description="paper jam"
            )
        # the register reconnects and retries the same id, as a browser does after a dropped connection
        async with connect(ws_url(hub)) as c:
            hello = await c.hello(token, session)
            assert hello["resumed"] is True
            again = await c.request(
                "report_incident", id="inc-1", category="printer", description="paper jam"
            )
            assert again == first
            # two copies of one id sent at once are still applied once
            frame = json.dumps(
                {"type": "report_incident", "id": "inc-2", "category": "a", "description": "b"}
            )
            await c.send_raw(frame)
            await c.send_raw(frame)
            while len([f for f in c.unmatched if f.get("id") == "inc-2"]) < 2:
                await trio.sleep(0.01)
            replies = [f for f in c.unmatched if f.get("id") == "inc-2"]
            assert replies[0] == replies[1] and replies[0]["type"] == "ok"
    assert hub.store.count("incidents") == 2


async def test_hello_without_session_token_must_log_in_again(hub: Hub) -> None:
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("maria", PINS["maria"])
            token = c.device_token
        async with connect(ws_url(hub)) as c:
            hello = await c.hello(token)
            assert hello["resumed"] is False and hello["staff"] is None
            with pytest.raises(ClientError) as e:
                await c.request("create_pairing_code", register_id="R2")
            assert e.value.code == "not_logged_in"


async def _handshake_status(port: int, origin: str) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: %s\r\n\r\n"
            % (port, origin.encode())
        )
        data = b""
        while b"\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0]


async def test_foreign_origin_refused(hub: Hub) -> None:
    with trio.fail_after(10):
        assert b" 403" in await _handshake_status(hub.ws_port, "http://evil.example")
        assert b" 101" in await _handshake_status(hub.ws_port, f"http://127.0.0.1:{hub.http_port}")
        # a page from another port on the same host is another origin
        assert b" 403" in await _handshake_status(hub.ws_port, f"http://127.0.0.1:{hub.http_port + 1}")
    assert hub.metrics.ws_rejected.labels("origin")._value.get() == 2


async def test_pair_replayed_with_a_used_code_is_refused_whatever_the_id(hub: Hub) -> None:
    # issue 11: a replay with the original id used to be answered from the stored reply, device token and
    # all; a used code now never answers again (a register that lost the answer asks for a new code)
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            first = await c.request("pair", id="pair-1", code=DEMO_PAIRING["R2"], device_name="counter 2")
            assert len(first["device_token"]) > 30
        async with connect(ws_url(hub)) as c:
            with pytest.raises(ClientError) as e:
                await c.request("pair", id="pair-1", code=DEMO_PAIRING["R2"], device_name="counter 2")
            assert e.value.code == "bad_pairing_code"
            assert first["device_token"] not in json.dumps(e.value.frame)
            assert c.welcome["boot"] == hub.boot_id
            with pytest.raises(ClientError) as e:  # a new message with the used code is still refused
                await c.request("pair", id="pair-2", code=DEMO_PAIRING["R2"])
            assert e.value.code == "bad_pairing_code"


async def test_rest_token_dies_with_the_session(hub: Hub) -> None:
    import httpx

    with trio.fail_after(20):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("maria", PINS["maria"])
            auth = {"authorization": f"Bearer {c.session_token}"}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}", headers=auth) as http:
                assert (await http.get("/api/devices")).status_code == 200
                await c.request("logout")
                assert (await http.get("/api/devices")).status_code == 401
