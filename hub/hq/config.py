"""hq.toml: what headquarters is: the chain, its stores, where NATS and PostgreSQL are, who may log in."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from hub.config import ChainId, ConfigError, humane

Role = Literal["viewer", "merchandiser", "admin"]
ROLE_RANK = {"viewer": 0, "merchandiser": 1, "admin": 2}


class HqSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    chain: ChainId
    name: str = ""


class HttpSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8090
    tls_cert: str = ""
    tls_key: str = ""
    session_hours: Annotated[float, msgspec.Meta(gt=0)] = 12.0


class NatsSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str = "nats://127.0.0.1:4222"
    user: str = ""
    password: str = ""
    creds_file: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""


class PostgresSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # libpq connection string; sslmode=verify-full etc. for TLS (https://www.postgresql.org/docs/current/libpq-ssl.html)
    dsn: str = "postgresql:///storehub_hq"


class IngestSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    durable: ChainId = "hq"
    batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    # batches applied side by side, each in its own transaction on its own connection
    appliers: Annotated[int, msgspec.Meta(ge=1, le=16)] = 2
    # an event fetched but not acknowledged (HQ died mid-batch) is delivered again after this long
    ack_wait_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    stream_max_age_days: Annotated[int, msgspec.Meta(ge=1)] = 90


class StoreEntry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: ChainId
    name: str = ""
    time_zone: str = "UTC"


class StaffEntry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user: ChainId
    name: str = ""
    role: Role = "viewer"
    password_hash: str  # `storehub hq hash-password` prints one (scrypt)


class HqConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    hq: HqSection
    http: HttpSection = msgspec.field(default_factory=HttpSection)
    nats: NatsSection = msgspec.field(default_factory=NatsSection)
    postgres: PostgresSection = msgspec.field(default_factory=PostgresSection)
    ingest: IngestSection = msgspec.field(default_factory=IngestSection)
    stores: list[StoreEntry] = []
    staff: list[StaffEntry] = []

    def store(self, store_id: str) -> StoreEntry | None:
        return next((s for s in self.stores if s.id == store_id), None)


def parse_hq_config(text: str, *, source: str = "hq.toml") -> HqConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        cfg = msgspec.convert(raw, HqConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {humane(str(exc))}") from None
    ids = [s.id for s in cfg.stores]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{source}: stores: a store id is listed twice")
    if bool(cfg.http.tls_cert) != bool(cfg.http.tls_key):
        raise ConfigError(f"{source}: http.tls_cert and http.tls_key: give both or neither")
    return cfg


def load_hq_config(path: str | Path) -> HqConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}") from None
    return parse_hq_config(text, source=str(p))
