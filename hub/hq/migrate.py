"""Versioned SQL migrations, applied at start: ``migrations/NNNN_name.sql`` in order, each once, each in its
own transaction, under an advisory lock so two HQ processes starting together do not race."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

MIGRATION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
LOCK_ID = 0x5707E4B0  # pg_advisory_lock key of storehub HQ migrations


def migrations() -> list[tuple[int, str, str]]:
    out = []
    for entry in resources.files("hub.hq.migrations").iterdir():
        m = MIGRATION.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    out.sort()
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migrations share a version number")
    return out


async def migrate(conn: Any) -> list[str]:
    """Apply what is missing; returns the names applied now. ``conn`` is a psycopg AsyncConnection."""
    applied_now: list[str] = []
    await conn.set_autocommit(True)
    await conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in await cur.fetchall()}
        for version, name, sql in migrations():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                )
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    return applied_now
