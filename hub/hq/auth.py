"""HQ staff login: scrypt password hashes in hq.toml, server-side sessions in a cookie, roles ranked
viewer < merchandiser (sets catalogue, prices, promotions) < admin."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from hub.hq.config import ROLE_RANK, HqConfig, StaffEntry

N, R, P = 2**14, 8, 1
COOKIE = "hq_session"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt${N}${R}${P}${salt.hex()}${digest.hex()}"


def check_password(stored: str, password: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(digest) // 2
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


@dataclass
class Session:
    user: str
    role: str
    expires: float


class Sessions:
    def __init__(self, config: HqConfig) -> None:
        self.config = config
        self.by_token: dict[str, Session] = {}
        self.failures: dict[str, list[float]] = {}

    def staff(self, user: str) -> StaffEntry | None:
        return next((s for s in self.config.staff if s.user == user), None)

    def locked(self, user: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self.failures.get(user, []) if now - t < 300]
        self.failures[user] = recent
        return len(recent) >= 5  # five wrong passwords in five minutes: wait

    def verify(self, user: str, password: str) -> StaffEntry | None:
        member = self.staff(user)
        if self.locked(user):
            return None
        if member is None or not check_password(member.password_hash, password):
            self.failures.setdefault(user, []).append(time.monotonic())
            return None
        return member

    def login(self, user: str, password: str) -> tuple[str, Session] | None:
        member = self.verify(user, password)
        if member is None:
            return None
        token = secrets.token_urlsafe(32)
        s = Session(
            user=member.user, role=member.role, expires=time.time() + self.config.http.session_hours * 3600
        )
        self.by_token[token] = s
        return token, s

    def logout(self, token: str) -> None:
        self.by_token.pop(token, None)

    def from_headers(self, headers: dict[str, str]) -> Session | None:
        """A session cookie, or HTTP Basic for scripts (checked every time, never stored)."""
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                s = self.by_token.get(value)
                if s is not None and s.expires > time.time():
                    return s
        auth = headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            member = self.verify(user, password)
            if member is not None:
                return Session(user=member.user, role=member.role, expires=time.time() + 60)
        return None


def allows(session: Session | None, role: str) -> bool:
    return session is not None and ROLE_RANK.get(session.role, -1) >= ROLE_RANK[role]
