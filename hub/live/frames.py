"""The live protocol's base types: the ``Command`` base, the session's own commands and the server frames.

Every client message is a ``Command`` (a msgspec Struct, tag field ``type``) with an ``id``; every answer
echoes that id as ``ok`` (with a ``result``) or ``error`` (a stable ``code``, a human ``message`` and, for
validation errors, the ``field``). The hub also pushes ``snapshot`` frames: the full state of a topic with a
version that only grows, so a reconnecting register simply takes the newest one.

A snapshot that is due when a reply goes out travels in the reply's frame instead of a frame of its own
(:func:`with_snapshot`): ``{"type":"ok","id":…,"result":…,"snapshot":{"type":"snapshot","topic":…,
"version":…,"state":…}}`` (an ``error`` may carry one too). A client takes a reply's ``snapshot`` exactly as
a snapshot frame (same topic, version and reconnection rules), before it settles the request, so the state
is current when the caller sees the answer. The reply a retried id is answered from is stored without it.

Features define their commands in their own ``protocol`` modules on top of this one; ``hub/live/protocol.py``
names every one of them in the union the hub decodes (this module must not import it: no cycle).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

MsgId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
StaffId = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Pin = Annotated[str, msgspec.Meta(min_length=4, max_length=12, pattern=r"^[0-9]+$")]

PROTOCOL_VERSION = 1


class Command(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """Base of every client message. Subclasses set ``tag="..."``."""

    id: MsgId


# ---- commands before login ----
class Pair(Command, tag="pair"):
    """Enrol this browser as a register with a manager's pairing code."""

    code: Annotated[str, msgspec.Meta(min_length=4, max_length=16)]
    device_name: Annotated[str, msgspec.Meta(max_length=80)] = ""


class Hello(Command, tag="hello"):
    """An enrolled register (re)connects: its device token, and a staff session token to resume if any."""

    device_token: Annotated[str, msgspec.Meta(min_length=16, max_length=128)]
    session_token: Annotated[str, msgspec.Meta(max_length=128)] = ""
    # newest snapshot version the register already has; the hub always sends the current one anyway
    known_version: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0


class Login(Command, tag="login"):
    staff: StaffId
    pin: Pin


class Ping(Command, tag="ping"):
    pass


# ---- commands after login ----
class Logout(Command, tag="logout"):
    pass


class CreatePairingCode(Command, tag="create_pairing_code"):
    register_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class ReportIncident(Command, tag="report_incident"):
    """Staff record a system problem or an exception from the register (e.g. a terminal went offline)."""

    category: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


# ---- server frames ----
class Frame(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    pass


class Ok(Frame, tag="ok"):
    id: str
    result: Any = None


class Error(Frame, tag="error"):
    id: str | None
    code: str
    message: str
    field: str | None = None


class Snapshot(Frame, tag="snapshot"):
    topic: str
    version: int
    state: Any


class Welcome(Frame, tag="welcome"):
    protocol: int
    store: str
    server_time: str
    demo: bool = False
    # changes when the hub restarts: snapshot versions are only comparable within one boot
    boot: str = ""


class Envelope(msgspec.Struct):
    """First-stage decode: just enough to route and to echo the id even when the rest is wrong."""

    type: Any = None
    id: Any = None


_encoder = msgspec.json.Encoder()


class ProtocolError(Exception):
    def __init__(self, msg_id: str | None, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.msg_id = msg_id
        self.code = code
        self.message = message
        self.field = field

    def frame(self) -> Error:
        return Error(id=self.msg_id, code=self.code, message=self.message, field=self.field)


_AT = re.compile(r"^(?P<what>.*?) - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")


MAX_JSON_DEPTH = 32
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth_exceeds(data: str | bytes, limit: int) -> bool:
    """True when the JSON text nests deeper than ``limit`` (checked before decoding: a decoder's recursion
    must never be what stops a hostile frame). Strings are skipped; only brackets are counted."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for m in _BRACKETS.finditer(_STRING.sub(b'""', raw)):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def explain(message: str) -> tuple[str | None, str]:
    m = _AT.match(message)
    if m:
        path = m.group("path") or None
        return path, f"Field `{path}`: {m.group('what')}."
    m = _MISSING.search(message)
    if m:
        return m.group("field"), f"Field `{m.group('field')}` is missing."
    m = _UNKNOWN.search(message)
    if m:
        return m.group("field"), f"Field `{m.group('field')}` is not part of this message."
    return None, message


def encode(frame: Any) -> str:
    return _encoder.encode(frame).decode()


def encode_bytes(frame: Any) -> bytes:
    return _encoder.encode(frame)


def with_snapshot(reply: str, snapshot: str) -> str:
    """The reply frame (a JSON object, as encoded or stored) with the snapshot frame spliced in as its
    ``snapshot`` member: no decode and no re-encode of either."""
    assert reply.endswith("}"), "a reply frame is a JSON object"
    return f'{reply[:-1]},"snapshot":{snapshot}}}'
