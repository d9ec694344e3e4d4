"""Staff accounts, PINs, register enrolment and lockout.

PINs are hashed with scrypt and a per-user salt (RFC 7914 parameters N=2^14, r=8, p=1: ~16 MiB and tens of
milliseconds, run off the trio thread). A browser register is enrolled once with a pairing code a manager
creates, and from then on presents a device token, stored here only as its SHA-256 (pairing codes too).

Every PIN typed anywhere (login, a witness, the incoming cashier of a hand-over, a manager's approval) goes
through :func:`authenticate`: one failure counter per account, five wrong PINs lock the account for five
minutes on every path, and every attempt is audited in its own transaction, so the refusal of the request
that carried the PIN cannot roll the audit entry back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import lmdb
import msgspec
import trio

from hub import audit
from hub.access import EnrolledDevice, Role, StaffSession, token_hash
from hub.errors import BadRequest, Forbidden, LockedOut, NotAuthenticated
from hub.store.env import Store, put, tget
from hub.store.keys import text

if TYPE_CHECKING:
    from hub.app import Hub

SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}
PAIRING_CODE_MINUTES = 15
# what a PIN is typed for; "login" keeps the audit actions login / login_failed, the others pin_*
PinPurpose = Literal["login", "witness", "incoming", "approval"]


class StaffMember(msgspec.Struct, kw_only=True):
    id: str
    name: str
    role: Role
    pin_salt: bytes
    pin_hash: bytes
    active: bool = True
    failures: int = 0
    locked_until: datetime | None = None
    created_at: datetime | None = None


class PairingCode(msgspec.Struct, kw_only=True):
    code: str
    register_id: str
    created_by: str
    expires_at: datetime


def hash_pin(pin: str, salt: bytes) -> bytes:
    return hashlib.scrypt(pin.encode(), salt=salt, **SCRYPT)


def new_staff(staff_id: str, name: str, role: Role, pin: str) -> StaffMember:
    if not (4 <= len(pin) <= 12 and pin.isdigit()):
        raise BadRequest("A PIN is 4 to 12 digits.", field="pin")
    salt = secrets.token_bytes(16)
    return StaffMember(
        id=staff_id,
        name=name,
        role=role,
        pin_salt=salt,
        pin_hash=hash_pin(pin, salt),
        created_at=datetime.now(UTC),
    )


def code_key(code: str) -> bytes:
    """Pairing codes are kept under a hash too: a backup of the store enrols nothing."""
    return hashlib.sha256(b"pairing-code:" + code.encode()).digest()


def drop_session(sessions: dict[bytes, StaffSession], session: StaffSession) -> None:
    """Forget every screen's token of ``session`` (several screens of a register may share it)."""
    for key in [k for k, v in sessions.items() if v is session]:
        del sessions[key]


# ---- writer functions (run inside the single writer's transaction) ----


def add_staff(txn: lmdb.Transaction, store: Store, member: StaffMember, *, by: str = "") -> None:
    if tget(txn, store, "staff", text(member.id), StaffMember) is not None:
        raise BadRequest(f"Staff ID {member.id!r} already exists.", field="id")
    put(txn, store, "staff", text(member.id), member)
    audit.append(txn, store, "staff_added", staff=by, detail={"staff": member.id, "role": member.role})


def create_pairing_code(
    txn: lmdb.Transaction, store: Store, register_id: str, *, by: str, now: datetime, code: str | None = None
) -> PairingCode:
    code = code or f"{secrets.randbelow(10**8):08d}"
    pc = PairingCode(
        code=code,
        register_id=register_id,
        created_by=by,
        expires_at=now + timedelta(minutes=PAIRING_CODE_MINUTES),
    )
    # the code itself is shown once to the manager and kept here only as a hash
    put(txn, store, "pairing_codes", code_key(code), msgspec.structs.replace(pc, code=""))
    audit.append(txn, store, "pairing_code_created", staff=by, register=register_id)
    return pc


def pairing_code_valid(store: Store, code: str, now: datetime) -> bool:
    pc = store.get("pairing_codes", code_key(code), PairingCode)
    return pc is not None and pc.expires_at >= now


def record_pairing_failure(
    txn: lmdb.Transaction, store: Store, *, reason: str, peer: str, device_name: str
) -> None:
    """Audited in a transaction of its own: the refused pairing writes nothing else."""
    audit.append(
        txn, store, "pairing_failed", detail={"reason": reason, "peer": peer, "device": device_name[:80]}
    )


def enroll(
    txn: lmdb.Transaction, store: Store, code: str, device_name: str, *, now: datetime, token: str
) -> EnrolledDevice:
    db = store.db("pairing_codes")
    pc = tget(txn, store, "pairing_codes", code_key(code), PairingCode)
    if pc is None or pc.expires_at < now:
        raise NotAuthenticated(
            "That pairing code is not valid or has expired. Ask a manager for a new one.",
            code="bad_pairing_code",
        )
    txn.delete(code_key(code), db=db)  # a code enrols one register, once
    dev = EnrolledDevice(
        register_id=pc.register_id, name=device_name, enrolled_at=now, enrolled_by=pc.created_by
    )
    put(txn, store, "devices", token_hash(token), dev)
    audit.append(
        txn,
        store,
        "register_enrolled",
        staff=pc.created_by,
        register=pc.register_id,
        detail={"device": device_name},
    )
    return dev


class LoginOutcome(msgspec.Struct, kw_only=True):
    ok: bool
    member: StaffMember | None = None
    message: str = ""
    locked_until: datetime | None = None


def record_login(
    txn: lmdb.Transaction,
    store: Store,
    staff_id: str,
    pin_ok: bool,
    *,
    register_id: str,
    now: datetime,
    max_failures: int = 5,
    lockout: timedelta = timedelta(minutes=5),
    purpose: PinPurpose = "login",
    acting: str = "",
) -> LoginOutcome:
    """Apply a PIN attempt whose PIN was already checked off-thread; audit every outcome. One failure
    counter per account whatever the PIN was typed for, so guesses spread over paths still lock."""
    prefix = "login" if purpose == "login" else "pin"
    extra = {} if purpose == "login" else {"purpose": purpose, "by": acting}
    member = tget(txn, store, "staff", text(staff_id), StaffMember)
    if member is None or not member.active:
        audit.append(
            txn,
            store,
            f"{prefix}_failed",
            register=register_id,
            detail={"staff": staff_id, "reason": "unknown", **extra},
        )
        return LoginOutcome(ok=False, message="Staff ID or PIN is not right.")
    if member.locked_until is not None and member.locked_until > now:
        audit.append(
            txn, store, f"{prefix}_refused_locked", staff=staff_id, register=register_id, detail=extra
        )
        return LoginOutcome(
            ok=False, message=_locked_message(member.locked_until, now), locked_until=member.locked_until
        )
    if pin_ok:
        member.failures = 0
        member.locked_until = None
        put(txn, store, "staff", text(staff_id), member)
        audit.append(
            txn,
            store,
            "login" if purpose == "login" else "pin_confirmed",
            staff=staff_id,
            register=register_id,
            detail=extra,
        )
        return LoginOutcome(ok=True, member=member)
    member.failures += 1
    audit.append(
        txn,
        store,
        f"{prefix}_failed",
        staff=staff_id,
        register=register_id,
        detail={"reason": "wrong PIN", "failures": member.failures, **extra},
    )
    if member.failures >= max_failures:
        member.failures = 0
        member.locked_until = now + lockout
        put(txn, store, "staff", text(staff_id), member)
        audit.append(
            txn,
            store,
            "lockout",
            staff=staff_id,
            register=register_id,
            detail={"until": member.locked_until.isoformat(), **extra},
        )
        return LoginOutcome(
            ok=False, message=_locked_message(member.locked_until, now), locked_until=member.locked_until
        )
    put(txn, store, "staff", text(staff_id), member)
    left = max_failures - member.failures
    return LoginOutcome(
        ok=False, message=f"Staff ID or PIN is not right. {left} tries left before a lockout."
    )


def _locked_message(until: datetime, now: datetime) -> str:
    minutes = max(1, int((until - now).total_seconds() + 59) // 60)
    return (
        f"Too many wrong PINs: this account is locked for {minutes} more minute{'s' if minutes != 1 else ''}."
    )


def check_pin(member: StaffMember | None, pin: str) -> bool:
    """Constant-time compare; an unknown staff ID still costs a scrypt so timing reveals nothing."""
    if member is None:
        hash_pin(pin, b"\x00" * 16)
        return False
    return hmac.compare_digest(hash_pin(pin, member.pin_salt), member.pin_hash)


# One scrypt at a time, on one dedicated thread: each scrypt allocates 16 MiB, and glibc keeps that memory
# in a per-thread arena, so spreading PIN checks over trio's 40-thread pool grows the hub by hundreds of MB
# (bench/RESULTS.md). A PIN check takes tens of ms; a queue of them at shift change is fine.
_pin_limiter: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("storehub_pin_limiter")


async def verify_pin(member: StaffMember | None, pin: str) -> bool:
    """check_pin off the trio thread, never more than one at a time (per trio run)."""
    try:
        limiter = _pin_limiter.get()
    except LookupError:
        limiter = trio.CapacityLimiter(1)
        _pin_limiter.set(limiter)
    return await trio.to_thread.run_sync(check_pin, member, pin, limiter=limiter)


def raise_for(outcome: LoginOutcome) -> None:
    if outcome.locked_until is not None:
        raise LockedOut(outcome.message)
    raise NotAuthenticated(outcome.message, code="bad_login")


async def authenticate(
    hub: Hub, staff_id: str, pin: str, *, register_id: str, purpose: PinPurpose, acting: str = ""
) -> StaffMember:
    """The one way a PIN is checked: scrypt off the trio thread, then the attempt counted and audited in
    its own write (durable before the answer). Raises LockedOut for a locked account on every path,
    NotAuthenticated(bad_login) for a wrong login, Forbidden(approval_refused) for a wrong second PIN."""
    member = hub.store.get("staff", text(staff_id), StaffMember)
    pin_ok = await verify_pin(member, pin)
    sec = hub.config.security
    now = datetime.now(UTC)
    outcome = await hub.writer.write(
        lambda txn: record_login(
            txn,
            hub.store,
            staff_id,
            pin_ok,
            register_id=register_id,
            now=now,
            max_failures=sec.lockout_after_failures,
            lockout=timedelta(minutes=sec.lockout_minutes),
            purpose=purpose,
            acting=acting,
        ),
        label=f"pin:{purpose}",
    )
    hub.metrics.logins.labels(
        ("ok" if outcome.ok else ("locked" if outcome.locked_until else "failed"))
        + ("" if purpose == "login" else f"_{purpose}")
    ).inc()
    if outcome.ok:
        assert outcome.member is not None
        return outcome.member
    if outcome.locked_until is not None or purpose == "login":
        raise_for(outcome)
    raise Forbidden(outcome.message, code="approval_refused")
