"""The live session sans-I/O, like h11's tests: frames in, frames and effects out; no socket, no hub, no store.

The lookups the session makes (handlers, codes, devices, staff sessions, stored replies, ids in flight) are
answered from dictionaries here; what the server would do with each effect is fed back by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from hub import auth
from hub.access import HandlerSpec
from hub.errors import NotAuthenticated
from hub.live.frames import Command, CreatePairingCode, Login, ReportIncident, Welcome
from hub.live.session import (
    Attach,
    AuditPairingFailure,
    Close,
    Dispatch,
    Effect,
    EndStaffSession,
    PairingThrottle,
    PersistPairing,
    Rejected,
    RunBeside,
    Send,
    Session,
    SessionConfig,
    WaitInFlight,
)
from hub.sale.protocol import CancelPayment, Scan

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEVICE_TOKEN = "d" * 43
SESSION_TOKEN = "s" * 32


async def _handler(req: Any, msg: Any) -> Any:
    return None


def spec(**kw: Any) -> HandlerSpec:
    base: dict[str, Any] = {
        "fn": _handler,
        "scope": "register",
        "login": True,
        "role": None,
        "idempotent": True,
    }
    return HandlerSpec(**{**base, **kw})


@dataclass
class FakeHub:
    """The session's Lookups, from dictionaries."""

    handlers: dict[type[Command], HandlerSpec] = field(
        default_factory=lambda: {
            Login: spec(login=False, idempotent=False),
            ReportIncident: spec(),
            CreatePairingCode: spec(role="manager", idempotent=False),
            Scan: spec(),
            CancelPayment: spec(scope="connection", idempotent=False),
        }
    )
    codes: dict[str, datetime] = field(default_factory=dict)  # code -> expires at
    devices: dict[bytes, auth.EnrolledDevice] = field(default_factory=dict)
    registers: dict[str, auth.StaffSession | None] = field(default_factory=lambda: {"R1": None, "R2": None})
    sessions: dict[bytes, auth.StaffSession] = field(default_factory=dict)
    replies: dict[tuple[str, str], tuple[bytes, bytes]] = field(default_factory=dict)
    in_flight_ids: set[tuple[str, str]] = field(default_factory=set)

    def handler(self, cls: type[Command]) -> HandlerSpec | None:
        return self.handlers.get(cls)

    def pairing_code_valid(self, code: str, now: datetime) -> bool:
        return code in self.codes and self.codes[code] >= now

    def device(self, token_hash: bytes) -> auth.EnrolledDevice | None:
        return self.devices.get(token_hash)

    def register_known(self, register_id: str) -> bool:
        return register_id in self.registers

    def register_session(self, register_id: str) -> auth.StaffSession | None:
        return self.registers[register_id]

    def session_by_token(self, token_hash: bytes) -> auth.StaffSession | None:
        return self.sessions.get(token_hash)

    def stored_reply(self, register_id: str, msg_id: str) -> tuple[bytes, bytes] | None:
        return self.replies.get((register_id, msg_id))

    def in_flight(self, register_id: str, msg_id: str) -> bool:
        return (register_id, msg_id) in self.in_flight_ids

    # what the server does with a PersistPairing effect (auth.enroll), in memory
    def enroll(self, effect: PersistPairing, register_id: str) -> None:
        del self.codes[effect.code]
        self.devices[auth.token_hash(effect.token)] = auth.EnrolledDevice(
            register_id=register_id, name=effect.device_name, enrolled_at=effect.at, enrolled_by="mia"
        )

    def log_in(self, register_id: str, role: str = "budtender", *, at: datetime = T0) -> bytes:
        h = auth.token_hash(SESSION_TOKEN + register_id + role)
        s = auth.StaffSession(
            staff_id="ana",
            name="Ana",
            role=role,
            register_id=register_id,
            token_hash=h,
            last_seen=at,  # type: ignore[arg-type]
        )
        self.registers[register_id] = s
        self.sessions[h] = s
        return h


CONFIG = SessionConfig(
    store_name="Test Store", boot_id="b00t", unpaired_idle_seconds=60, staff_idle=timedelta(minutes=30)
)


def new_session(hub: FakeHub, *, throttle: PairingThrottle | None = None, peer: str = "10.0.0.9") -> Session:
    tokens = iter(f"token-{i:02d}-" + "x" * 30 for i in range(100))
    return Session(
        config=CONFIG,
        lookups=hub,
        throttle=throttle or PairingThrottle(5, 20),
        peer=peer,
        clock=0.0,
        new_token=lambda: next(tokens),
    )


def frame(msg_type: str, msg_id: str = "m1", **fields: Any) -> str:
    return json.dumps({"type": msg_type, "id": msg_id, **fields})


def receive(s: Session, data: str | bytes, *, now: datetime = T0, clock: float = 1.0) -> list[Effect]:
    return s.receive(data, now=now, clock=clock)


def sent(effects: list[Effect]) -> list[Any]:
    """The frames among the effects, as the client would read them."""
    out = []
    for e in effects:
        if isinstance(e, Send):
            raw = e.frame if isinstance(e.frame, bytes) else msgspec.json.encode(e.frame)
            out.append(json.loads(raw))
    return out


def only_error(effects: list[Effect]) -> dict[str, Any]:
    frames = sent(effects)
    assert len(frames) == 1 and frames[0]["type"] == "error", effects
    return frames[0]


def paired_session(hub: FakeHub, register_id: str = "R1") -> Session:
    s = new_session(hub)
    hub.devices[auth.token_hash(DEVICE_TOKEN + register_id)] = auth.EnrolledDevice(
        register_id=register_id, name="front", enrolled_at=T0, enrolled_by="mia"
    )
    effects = receive(s, frame("hello", "h", device_token=DEVICE_TOKEN + register_id))
    assert Attach(register_id) in effects
    return s


def pin_typed_here(s: Session, register_id: str = "R1", role: str = "budtender") -> None:
    """The register's login handler answered a PIN typed on this screen (with the token of
    ``FakeHub.log_in``): the answer is how the session learns which staff session this screen proved."""
    token = SESSION_TOKEN + register_id + role
    staff = {"id": "ana", "name": "Ana", "role": role}
    s.answered(Login(id="l-pin", staff="ana", pin="1234"), {"staff": staff, "session_token": token})


# ---- the welcome and the auth gate ----


def test_welcome_names_the_store_and_the_boot() -> None:
    [effect] = new_session(FakeHub()).welcome(T0)
    assert isinstance(effect, Send) and isinstance(effect.frame, Welcome)
    assert effect.frame.store == "Test Store" and effect.frame.boot == "b00t"


def test_unpaired_connection_may_only_pair_say_hello_or_ping() -> None:
    hub = FakeHub()
    s = new_session(hub)
    [pong] = sent(receive(s, frame("ping", "p1")))
    assert pong["type"] == "ok" and pong["id"] == "p1" and pong["result"]["server_time"] == T0.isoformat()
    for msg_type, fields in [
        ("login", {"staff": "ana", "pin": "1234"}),
        ("report_incident", {"category": "x", "description": "y"}),
        ("scan", {"data": "1A4000000000000000000001"}),
        ("cancel_payment", {}),
    ]:
        effects = receive(s, frame(msg_type, "m-" + msg_type, **fields))
        err = only_error(effects)
        assert err["code"] == "not_paired" and err["id"] == "m-" + msg_type
        assert not any(isinstance(e, Dispatch | RunBeside) for e in effects)
    # a hello with an unknown device token is refused the same way and attaches nothing
    effects = receive(s, frame("hello", "h", device_token="u" * 40))
    assert only_error(effects)["code"] == "not_paired" and s.register_id is None


def test_login_required_per_handler_spec_and_role() -> None:
    hub = FakeHub()
    s = paired_session(hub)
    # login itself is open (its spec says login=False); the actor checks the PIN
    assert [type(e) for e in receive(s, frame("login", "l1", staff="ana", pin="1234"))] == [Dispatch]
    assert only_error(receive(s, frame("report_incident", "r1", category="x", description="y")))["code"] == (
        "not_logged_in"
    )
    # the register's session opened by a PIN on ANOTHER screen is not this screen's
    hub.log_in("R1", "budtender")
    assert only_error(receive(s, frame("report_incident", "r2", category="x", description="y")))["code"] == (
        "not_logged_in"
    )
    pin_typed_here(s, "R1", "budtender")  # a PIN typed here: the login's answer tells the session
    [dispatch] = receive(s, frame("report_incident", "r3", category="x", description="y"))
    assert isinstance(dispatch, Dispatch) and dispatch.register_id == "R1" and dispatch.msg.id == "r3"
    # a manager's command refused to a budtender, by role
    err = only_error(receive(s, frame("create_pairing_code", "c1", register_id="R2")))
    assert err["code"] == "forbidden" and "manager" in err["message"]
    hub.log_in("R1", "manager")
    pin_typed_here(s, "R1", "manager")
    assert [type(e) for e in receive(s, frame("create_pairing_code", "c2", register_id="R2"))] == [Dispatch]
    # a connection-scope handler runs beside the actor, not through its mailbox
    [beside] = receive(s, frame("cancel_payment", "x1"))
    assert isinstance(beside, RunBeside) and beside.msg.id == "x1"


def test_a_command_no_handler_serves_is_unsupported() -> None:
    hub = FakeHub()
    del hub.handlers[Scan]
    s = paired_session(hub)
    assert only_error(receive(s, frame("scan", data="x")))["code"] == "unsupported"


# ---- pairing ----


def test_pairing_with_a_good_code_persists_then_answers_the_token() -> None:
    hub = FakeHub(codes={"12345678": T0 + timedelta(minutes=10)})
    s = new_session(hub)
    [persist] = receive(s, frame("pair", "p1", code="12345678", device_name="front"))
    # nothing is answered before the enrolment is written: no token frame yet
    assert isinstance(persist, PersistPairing)
    assert persist.code == "12345678" and persist.device_name == "front" and persist.msg_id == "p1"
    assert s.register_id is None
    hub.enroll(persist, "R1")
    effects = s.paired(persist, "R1", "front")
    assert effects[0] == Attach("R1")
    [ok] = sent(effects)
    assert ok == {"type": "ok", "id": "p1", "result": {"device_token": persist.token, "register_id": "R1"}}
    assert s.register_id == "R1" and s.session_hash is None  # a new screen starts logged out
    # the token it got says hello on a new connection
    s2 = new_session(hub)
    [attach, send] = receive(s2, frame("hello", "h", device_token=persist.token))
    assert attach == Attach("R1") and sent([send])[0]["result"]["resumed"] is False


def test_pairing_again_on_a_logged_in_screen_starts_it_logged_out() -> None:
    hub = FakeHub(codes={"12345678": T0 + timedelta(minutes=10)})
    s = paired_session(hub)
    hub.log_in("R1")
    pin_typed_here(s, "R1")
    [persist] = receive(s, frame("pair", "p1", code="12345678"))
    assert isinstance(persist, PersistPairing)
    hub.enroll(persist, "R2")
    assert s.paired(persist, "R2", "browser")[0] == Attach("R2")
    assert s.register_id == "R2" and s.session_hash is None
    assert only_error(receive(s, frame("report_incident", "r", category="x", description="y")))["code"] == (
        "not_logged_in"
    )


def test_a_bad_code_is_audited_and_throttled_after_five_a_minute() -> None:
    hub = FakeHub()
    throttle = PairingThrottle(5, 20)
    s = new_session(hub, throttle=throttle)
    for i in range(5):
        effects = receive(s, frame("pair", f"p{i}", code="00000000"), clock=1.0 + i)
        assert effects[0] == AuditPairingFailure("unknown, used or expired code", "10.0.0.9", "browser")
        assert only_error(effects)["code"] == "bad_pairing_code"
    effects = receive(s, frame("pair", "p5", code="00000000"), clock=6.0)
    assert only_error(effects)["code"] == "rate_limited"
    assert Rejected("pairing_rate") in effects
    assert AuditPairingFailure("too many attempts", "10.0.0.9", "browser") in effects
    # a flood is audited once per connection, and even a good code waits for the window
    hub.codes["12345678"] = T0 + timedelta(minutes=10)
    effects = receive(s, frame("pair", "p6", code="12345678"), clock=7.0)
    assert only_error(effects)["code"] == "rate_limited"
    assert not any(isinstance(e, AuditPairingFailure | PersistPairing) for e in effects)
    # a minute after the first attempts, this connection may try again
    [persist] = receive(s, frame("pair", "p7", code="12345678"), clock=62.0)
    assert isinstance(persist, PersistPairing)


def test_the_address_throttle_spans_connections() -> None:
    hub = FakeHub()
    throttle = PairingThrottle(5, 8)
    codes = []
    for n in range(3):
        s = new_session(hub, throttle=throttle)
        for i in range(3):
            codes.append(
                only_error(receive(s, frame("pair", f"p{n}{i}", code="00000000"), clock=1.0))["code"]
            )
    assert codes.count("bad_pairing_code") == 8 and codes[-1] == "rate_limited"
    other = new_session(hub, throttle=throttle, peer="10.0.0.10")
    assert (
        only_error(receive(other, frame("pair", "q", code="00000000"), clock=1.0))["code"]
        == "bad_pairing_code"
    )


def test_a_used_code_is_refused_whatever_the_id() -> None:
    hub = FakeHub(codes={"12345678": T0 + timedelta(minutes=10)})
    s = new_session(hub)
    [persist] = receive(s, frame("pair", "p1", code="12345678"))
    assert isinstance(persist, PersistPairing)
    hub.enroll(persist, "R1")
    s.paired(persist, "R1", "browser")
    for msg_id in ("p1", "p2"):  # the same id again is not answered from a stored reply: no token twice
        effects = receive(new_session(hub), frame("pair", msg_id, code="12345678"))
        assert only_error(effects)["code"] == "bad_pairing_code"
        assert not any(isinstance(e, PersistPairing) for e in effects)
    # a code used by a concurrent pairing between the check and the write: refused and audited
    hub.codes["87654321"] = T0 + timedelta(minutes=10)
    s3 = new_session(hub)
    [persist3] = receive(s3, frame("pair", "p3", code="87654321"))
    effects = s3.pairing_refused(persist3.msg_id, persist3.device_name)
    assert isinstance(effects[0], AuditPairingFailure) and only_error(effects)["code"] == "bad_pairing_code"
    assert s3.register_id is None


def test_an_expired_code_is_refused() -> None:
    hub = FakeHub(codes={"12345678": T0 - timedelta(seconds=1)})
    assert only_error(receive(new_session(hub), frame("pair", code="12345678")))["code"] == "bad_pairing_code"


# ---- idempotency ----


def test_same_id_same_body_is_answered_from_the_stored_reply() -> None:
    hub = FakeHub()
    s = paired_session(hub)
    hub.log_in("R1")
    pin_typed_here(s, "R1")
    data = frame("scan", "s1", data="1A4000000000000000000001")
    [dispatch] = receive(s, data)
    assert isinstance(dispatch, Dispatch)
    stored = b'{"type":"ok","id":"s1","result":{"line":1}}'
    hub.replies[("R1", "s1")] = (stored, dispatch.fingerprint)
    assert receive(s, data) == [Send(stored)]  # the same bytes, nothing applied again


def test_same_id_different_body_is_id_reused() -> None:
    hub = FakeHub()
    s = paired_session(hub)
    hub.log_in("R1")
    pin_typed_here(s, "R1")
    [dispatch] = receive(s, frame("scan", "s1", data="1A4000000000000000000001"))
    assert isinstance(dispatch, Dispatch)
    hub.replies[("R1", "s1")] = (b'{"type":"ok","id":"s1"}', dispatch.fingerprint)
    effects = receive(s, frame("scan", "s1", data="1A4000000000000000000002"))
    err = only_error(effects)
    assert err["code"] == "id_reused" and err["field"] == "id" and err["id"] == "s1"
    assert not any(isinstance(e, Dispatch) for e in effects)


def test_same_id_while_in_flight_waits_then_answers_from_the_stored_reply() -> None:
    hub = FakeHub()
    s = paired_session(hub)
    hub.log_in("R1")
    pin_typed_here(s, "R1")
    data = frame("scan", "s1", data="1A4000000000000000000001")
    hub.in_flight_ids.add(("R1", "s1"))
    [wait] = receive(s, data)
    assert isinstance(wait, WaitInFlight) and wait.msg.id == "s1"
    # the first one lands and stores its reply: the waiting one is answered from it
    hub.in_flight_ids.clear()
    stored = b'{"type":"ok","id":"s1"}'
    hub.replies[("R1", "s1")] = (stored, wait.fingerprint)
    assert s.in_flight_done(wait) == [Send(stored)]
    # when the first one failed (nothing stored), the waiting one is applied itself
    del hub.replies[("R1", "s1")]
    [dispatch] = s.in_flight_done(wait)
    assert isinstance(dispatch, Dispatch) and dispatch.fingerprint == wait.fingerprint


def test_a_non_idempotent_command_is_always_dispatched() -> None:
    hub = FakeHub()
    s = paired_session(hub)
    hub.replies[("R1", "l1")] = (b'{"type":"ok","id":"l1"}', b"")
    assert [type(e) for e in receive(s, frame("login", "l1", staff="ana", pin="1234"))] == [Dispatch]


def test_one_stored_reply_read_per_idempotent_command_and_none_for_the_others() -> None:
    """The duplicate check costs one read, and only where a reply is stored; a command that stores none
    is dispatched without a fingerprint (it is applied again when retried, so there is nothing to compare)."""
    reads: list[tuple[str, str]] = []

    class CountingHub(FakeHub):
        def stored_reply(self, register_id: str, msg_id: str) -> tuple[bytes, bytes] | None:
            reads.append((register_id, msg_id))
            return super().stored_reply(register_id, msg_id)

    hub = CountingHub()
    s = paired_session(hub)
    hub.log_in("R1")
    pin_typed_here(s, "R1")
    [login] = receive(s, frame("login", "l1", staff="ana", pin="1234"))
    assert isinstance(login, Dispatch) and login.fingerprint == b"" and reads == []
    [scan] = receive(s, frame("scan", "s1", data="1A4000000000000000000001"))
    assert isinstance(scan, Dispatch) and len(scan.fingerprint) == 16 and reads == [("R1", "s1")]


def test_answers_echo_the_id_or_the_committed_frame() -> None:
    s = paired_session(FakeHub())
    a1 = ReportIncident(id="a1", category="x", description="y")
    assert sent(s.answered(a1, {"n": 1})) == [{"type": "ok", "id": "a1", "result": {"n": 1}}]
    assert s.answered(a1, {"n": 1}, b"stored") == [Send(b"stored")]
    assert sent(s.timed_out("a2"))[0]["code"] == "timeout"


# ---- malformed frames: an error naming the field, the connection stays ----


@pytest.mark.parametrize(
    ("data", "code", "field"),
    [
        ("{not json", "malformed", None),
        ("[1,2]", "malformed", None),
        ('{"type":"ping"}', "invalid", "id"),
        ('{"type":"ping","id":5}', "invalid", "id"),
        ('{"id":"m1"}', "invalid", "type"),
        ('{"type":"no_such_thing","id":"m1"}', "unknown_type", "type"),
        ('{"type":"login","id":"m1","staff":5,"pin":"1234"}', "invalid", "staff"),
        ('{"type":"login","id":"m1","pin":"1234"}', "invalid", "staff"),
        ('{"type":"login","id":"m1","staff":"ana","pin":"1234","extra":1}', "invalid", "extra"),
        ('{"type":"pair","id":"m1","code":"12"}', "invalid", "code"),
        ("[" * 40 + "]" * 40, "malformed", None),
        ('{"type":"ping","id":"m1","x":' + "[" * 40 + "]" * 40 + "}", "malformed", None),
    ],
)
def test_malformed_frames_are_answered_and_the_session_goes_on(
    data: str, code: str, field: str | None
) -> None:
    hub = FakeHub()
    s = paired_session(hub)
    err = only_error(receive(s, data))
    assert err["code"] == code and err.get("field") == field
    if field is not None and code == "invalid" and field not in ("id", "type"):
        assert f"`{field}`" in err["message"]
    # nothing else happened, and the next good frame is served
    assert len(receive(s, data)) == 1
    assert sent(receive(s, frame("ping", "p")))[0]["type"] == "ok"
    assert s.register_id == "R1"


# ---- expiry ----


def test_an_idle_staff_session_ends_and_the_command_needs_a_login() -> None:
    hub = FakeHub()
    s = paired_session(hub)
    hub.log_in("R1", at=T0)
    pin_typed_here(s, "R1")
    data = frame("report_incident", "r1", category="x", description="y")
    assert [type(e) for e in receive(s, data, now=T0 + timedelta(minutes=30))] == [Dispatch]
    effects = receive(
        s, frame("report_incident", "r2", category="x", description="y"), now=T0 + timedelta(minutes=31)
    )
    assert EndStaffSession("R1") in effects and only_error(effects)["code"] == "not_logged_in"


def test_hello_resumes_only_a_live_session_it_holds_the_token_of() -> None:
    hub = FakeHub()
    hub.devices[auth.token_hash(DEVICE_TOKEN)] = auth.EnrolledDevice(
        register_id="R1", name="front", enrolled_at=T0, enrolled_by="mia"
    )
    h = hub.log_in("R1")
    token = SESSION_TOKEN + "R1budtender"
    assert auth.token_hash(token) == h

    def hello(now: datetime, session_token: str) -> tuple[dict[str, Any], list[Effect]]:
        s = new_session(hub)
        effects = receive(
            s, frame("hello", "h", device_token=DEVICE_TOKEN, session_token=session_token), now=now
        )
        assert Attach("R1") in effects
        [ok] = sent(effects)
        assert (s.session_hash is not None) == ok["result"]["resumed"]
        return ok["result"], effects

    staff = {"id": "ana", "name": "Ana", "role": "budtender"}
    assert hello(T0, token)[0] == {"register_id": "R1", "resumed": True, "staff": staff}
    assert hello(T0, "")[0]["resumed"] is False  # no token: logged out, other screens keep theirs
    assert hello(T0, "w" * 32)[0]["resumed"] is False  # someone else's or a dropped token
    result, effects = hello(T0 + timedelta(minutes=31), token)  # idle too long: ended, not resumed
    assert result["resumed"] is False and result["staff"] is None and EndStaffSession("R1") in effects


def test_a_revoked_device_or_an_unknown_register_must_pair_again() -> None:
    hub = FakeHub()
    hub.devices[auth.token_hash(DEVICE_TOKEN)] = auth.EnrolledDevice(
        register_id="R1", name="f", enrolled_at=T0, enrolled_by="m", revoked=True
    )
    hub.devices[auth.token_hash(DEVICE_TOKEN + "X")] = auth.EnrolledDevice(
        register_id="R9", name="f", enrolled_at=T0, enrolled_by="m"
    )
    for token in (DEVICE_TOKEN, DEVICE_TOKEN + "X"):
        s = new_session(hub)
        assert only_error(receive(s, frame("hello", device_token=token)))["code"] == "not_paired"
        assert s.register_id is None


def test_an_unpaired_connection_is_closed_after_its_quiet_time() -> None:
    s = new_session(FakeHub())
    assert s.tick(59.0) == []
    receive(s, frame("ping"), clock=30.0)  # anything heard restarts the wait
    assert s.tick(89.0) == [] and s.idle_deadline() == 90.0
    assert s.tick(90.0) == [Close(1008, "pair or say hello first")]
    paired = paired_session(FakeHub())
    assert paired.tick(10_000.0) == []


# ---- the API production drives: decode, then handle (hub/live/server.py Connection._handle_one) ----


def feed(s: Session, data: str, *, now: datetime = T0, clock: float = 1.0) -> list[Effect]:
    """One frame as the server feeds it: ``decode`` (heard, bounded, typed), then ``handle``."""
    return s.handle(s.decode(data, clock), now=now, clock=clock)


def test_a_second_hello_on_the_same_connection_does_not_attach_again() -> None:
    hub = FakeHub()
    s = paired_session(hub)  # attached to R1 by its hello
    effects = feed(s, frame("hello", "h2", device_token=DEVICE_TOKEN + "R1"))
    # counted once: a second Attach would subscribe the connection twice and count two screens
    assert not any(isinstance(e, Attach) for e in effects)
    [ok] = sent(effects)
    assert ok["type"] == "ok" and ok["result"]["register_id"] == "R1"
    assert s.register_id == "R1"


def test_hello_without_a_session_token_on_a_logged_in_screen_logs_it_out() -> None:
    hub = FakeHub()
    s = paired_session(hub)
    hub.log_in("R1")
    pin_typed_here(s, "R1")
    [dispatch] = feed(s, frame("report_incident", "r1", category="x", description="y"))
    assert isinstance(dispatch, Dispatch) and dispatch.staff is hub.registers["R1"]
    [ok] = sent(feed(s, frame("hello", "h2", device_token=DEVICE_TOKEN + "R1")))
    assert ok["result"]["resumed"] is False and ok["result"]["staff"] is None
    assert s.session_hash is None
    err = only_error(feed(s, frame("report_incident", "r2", category="x", description="y")))
    assert err["code"] == "not_logged_in"


def test_the_gate_decides_once_and_the_dispatch_carries_the_staff_session() -> None:
    hub = FakeHub()
    s = paired_session(hub)
    [login] = feed(s, frame("login", "l1", staff="ana", pin="1234"))
    assert isinstance(login, Dispatch) and login.staff is None  # no login needed, none proved here
    hub.log_in("R1", "manager")
    live = hub.registers["R1"]
    # the login's answer reaches the session: from then on this screen holds the staff session
    s.answered(login.msg, {"staff": {"id": "ana"}, "session_token": SESSION_TOKEN + "R1manager"})
    [code] = feed(s, frame("create_pairing_code", "c1", register_id="R2"))
    assert isinstance(code, Dispatch) and code.staff is live
    [beside] = feed(s, frame("cancel_payment", "x1"))
    assert isinstance(beside, RunBeside) and beside.staff is live
    # a failed login answers no token: the screen keeps what it had (nothing new proved)
    s.failed("l2", NotAuthenticated("bad PIN", code="bad_login"))
    assert s.session_hash == auth.token_hash(SESSION_TOKEN + "R1manager")


def test_the_handler_spec_is_the_one_source_of_no_login_needed() -> None:
    hub = FakeHub()
    # a handler that says it needs no login is dispatched logged out, whatever its command
    hub.handlers[ReportIncident] = spec(login=False)
    s = paired_session(hub)
    [dispatch] = feed(s, frame("report_incident", "r1", category="x", description="y"))
    assert isinstance(dispatch, Dispatch) and dispatch.staff is None
    # and login is gated like any command when its handler asks for a login: no list of exceptions
    hub.handlers[Login] = spec(login=True, idempotent=False)
    err = only_error(feed(s, frame("login", "l1", staff="ana", pin="1234")))
    assert err["code"] == "not_logged_in"
    hub.handlers[Login] = spec(login=False, role="manager", idempotent=False)
    assert only_error(feed(s, frame("login", "l2", staff="ana", pin="1234")))["code"] == "forbidden"


def test_two_retries_waiting_for_one_id_apply_it_once() -> None:
    """Point 5 of the review: the first attempt fails (nothing stored); both waiting retries wake; the first
    to run applies it, the other waits again and is answered from its stored reply."""
    hub = FakeHub()
    s1, s2 = paired_session(hub), paired_session(hub)
    for s in (s1, s2):
        hub.log_in("R1")
        pin_typed_here(s, "R1")
    data = frame("scan", "s1", data="1A4000000000000000000001")
    hub.in_flight_ids.add(("R1", "s1"))  # the first attempt is being applied
    [wait1] = feed(s1, data)
    [wait2] = feed(s2, data)
    assert isinstance(wait1, WaitInFlight) and isinstance(wait2, WaitInFlight)
    hub.in_flight_ids.clear()  # it failed: no stored reply
    [again1] = s1.in_flight_done(wait1)
    assert isinstance(again1, Dispatch)
    hub.in_flight_ids.add(("R1", "s1"))  # the server marks a dispatched id in flight before it yields
    assert s2.in_flight_done(wait2) == [wait2]  # not dispatched a second time: it waits again
    hub.in_flight_ids.clear()
    stored = b'{"type":"ok","id":"s1"}'
    hub.replies[("R1", "s1")] = (stored, again1.fingerprint)
    assert s2.in_flight_done(wait2) == [Send(stored)]
