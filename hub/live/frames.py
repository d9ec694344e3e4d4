"""The live protocol between browser registers (and other clients) and the hub: JSON text frames.

Every client message is a ``Command`` (a msgspec Struct in one tagged union, tag field ``type``) with an
``id``; every answer echoes that id as ``ok`` (with a ``result``) or ``error`` (a stable ``code``, a human
``message`` and, for validation errors, the ``field``). The hub also pushes ``snapshot`` frames: the full
state of a topic with a version that only grows, so a reconnecting register simply takes the newest one.

Later modules add commands by subclassing :class:`Command`; the decoder is built from all subclasses.
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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        global _decoder, _types
        _decoder = None  # a new command type: rebuild the union decoder on next use
        _types = None


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


PRE_LOGIN: tuple[type[Command], ...] = (Pair, Hello, Login, Ping)


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


_envelope = msgspec.json.Decoder(Envelope)
_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Any] | None = None
_types: dict[str, type[Command]] | None = None


def _all_commands() -> set[type[Command]]:
    out: set[type[Command]] = set()
    stack = list(Command.__subclasses__())
    while stack:
        cls = stack.pop()
        out.add(cls)
        stack.extend(cls.__subclasses__())
    return {c for c in out if c.__struct_config__.tag is not None}


def command_types() -> dict[str, type[Command]]:
    global _types
    if _types is None:
        _types = {c.__struct_config__.tag: c for c in _all_commands()}  # type: ignore[misc]
    return _types


def _command_decoder() -> msgspec.json.Decoder[Any]:
    global _decoder
    if _decoder is None:
        union = tuple(sorted(_all_commands(), key=lambda c: c.__name__))
        _decoder = msgspec.json.Decoder(union[0] if len(union) == 1 else _union(union))
    return _decoder


def _union(types: tuple[type, ...]) -> Any:
    u: Any = types[0]
    for t in types[1:]:
        u = u | t
    return u


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


def decode_command(data: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Command:
    """Decode one client frame or raise ProtocolError with a clear, field-naming message."""
    if json_depth_exceeds(data, max_depth):
        raise ProtocolError(None, "malformed", f"The message nests deeper than {max_depth} levels.")
    try:
        env = _envelope.decode(data)
    except msgspec.ValidationError:
        raise ProtocolError(None, "malformed", "A message must be a JSON object.") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(None, "malformed", f"The message is not valid JSON ({exc}).") from None
    msg_id = env.id if isinstance(env.id, str) and 0 < len(env.id) <= 64 else None
    if env.id is None:
        raise ProtocolError(None, "invalid", "Every message needs an `id` (a string).", field="id")
    if msg_id is None:
        raise ProtocolError(None, "invalid", "The `id` must be a string of 1 to 64 characters.", field="id")
    if not isinstance(env.type, str):
        raise ProtocolError(msg_id, "invalid", "Every message needs a `type` (a string).", field="type")
    if env.type not in command_types():
        raise ProtocolError(msg_id, "unknown_type", f"Unknown message type {env.type!r}.", field="type")
    try:
        return _command_decoder().decode(data)
    except msgspec.ValidationError as exc:
        field, text = explain(str(exc))
        raise ProtocolError(msg_id, "invalid", text, field=field) from None


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


_explain = explain  # the name other modules knew it by


def encode(frame: Any) -> str:
    return _encoder.encode(frame).decode()


def encode_bytes(frame: Any) -> bytes:
    return _encoder.encode(frame)
