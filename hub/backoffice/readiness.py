"""Opening the day: is the store ready to sell? Each check says in plain words what is wrong and what to do.

Used by the back office (with the running hub's live device and state-channel health) and by
``storehub report readiness`` (from the store alone, read-only; live health then shows as unknown).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Literal

import msgspec

from hub.backoffice.records import day_reports, drawers, scan_prefix
from hub.config import StoreConfig
from hub.device_health import DeviceStatus
from hub.domain.outbox import OutboxEntry
from hub.store.env import Store, decode
from hub.store.keys import from_u64

Status = Literal["ok", "warn", "problem", "unknown"]
RECONCILE_WARN_DAYS = 7
RECONCILE_MAX_DAYS = 30  # CA 4 CCR 15051: reconcile with the track-and-trace system at least every 30 days
OUTBOX_STALE = timedelta(hours=1)


class Check(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    status: Status
    message: str
    action: str = ""


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    ready: bool  # no problem (warnings allowed)
    checked_at: datetime
    checks: tuple[Check, ...]


def _state_system(config: StoreConfig, health: Any) -> list[Check]:
    if config.state_system.kind == "none":
        return [
            Check(
                name="State system",
                status="warn",
                message="No state track-and-trace system is configured: sales wait in the outbox.",
                action="Set [state_system] in store.toml with the licence's credentials.",
            )
        ]
    if health is None:
        return [
            Check(
                name="State system",
                status="unknown",
                message=f"{config.state_system.kind}: reachability is only known while the hub runs.",
                action="Open the back office's readiness page on the running hub.",
            )
        ]
    reachable = bool(health.get("reachable", health.get("up", False)))
    auth_ok = bool(health.get("credentials_ok", health.get("auth_ok", reachable)))
    detail = str(health.get("detail", ""))
    if not reachable:
        return [
            Check(
                name="State system",
                status="problem",
                message=f"The state system cannot be reached. {detail}".strip(),
                action="Selling goes on; check the internet link. Sales are sent when it is back.",
            )
        ]
    if not auth_ok:
        return [
            Check(
                name="State system",
                status="problem",
                message=f"The state system refuses the store's credentials. {detail}".strip(),
                action="Renew the API keys (vendor and user key) and enter them in store.toml.",
            )
        ]
    return [Check(name="State system", status="ok", message="Reachable, credentials accepted.")]


def _outbox(store: Store, now: datetime) -> list[Check]:
    pending = stale = 0
    dead_seqs: set[int] = set()
    with store.read() as txn:
        for _, raw in scan_prefix(txn, store, "outbox", b""):
            e = decode(raw, OutboxEntry)
            if e.state == "sent":
                continue
            if e.state == "dead":
                dead_seqs.add(e.seq)
            else:
                pending += 1
                if now - e.created_at > OUTBOX_STALE:
                    stale += 1
        # the dead-letter list indexes the same entries: each one counts once
        if "outbox_dead" in store.tables:
            with txn.cursor(db=store.db("outbox_dead")) as cur:
                for key in cur.iternext(values=False):
                    listed = txn.get(bytes(key), db=store.db("outbox"))
                    if listed is not None and decode(listed, OutboxEntry).state == "dead":
                        dead_seqs.add(from_u64(bytes(key)))
    dead = len(dead_seqs)
    out = []
    if dead:
        out.append(
            Check(
                name="Dead letters",
                status="problem",
                message=f"{dead} entr{'ies were' if dead != 1 else 'y was'} refused by the state system and will not be retried.",
                action="Open Dead letters, fix each entry (package, quantity, time) and resend it.",
            )
        )
    if stale:
        out.append(
            Check(
                name="Unsent to the state",
                status="problem",
                message=f"{stale} of {pending} unsent entries are older than an hour.",
                action="Check the state system's status; the outbox keeps retrying.",
            )
        )
    elif pending:
        out.append(
            Check(
                name="Unsent to the state",
                status="warn",
                message=f"{pending} entr{'ies are' if pending != 1 else 'y is'} on the way to the state system.",
            )
        )
    if not out:
        out.append(
            Check(name="State outbox", status="ok", message="Everything has reached the state system.")
        )
    return out


def _devices(health: Mapping[str, DeviceStatus] | None) -> list[Check]:
    if health is None:
        return [
            Check(
                name="Devices",
                status="unknown",
                message="Device health is only known while the hub runs.",
                action="Open the back office's readiness page on the running hub.",
            )
        ]
    down = [d for d in health.values() if not d.up]
    if not health:
        return [Check(name="Devices", status="ok", message="No devices are configured.")]
    if not down:
        return [Check(name="Devices", status="ok", message=f"All {len(health)} devices are up.")]
    return [
        Check(
            name=f"Device {d.id}",
            status="problem",
            message=f"The {d.kind.replace('_', ' ')}"
            f"{' of register ' + d.register if d.register else ''} is down: {d.detail or 'no answer'}.",
            action="Check its cable and power; the register works without it (cash only for a terminal, "
            "no weighed sales for a scale).",
        )
        for d in down
    ]


def _yesterday(store: Store, config: StoreConfig, today: date, now: datetime) -> list[Check]:
    zone = config.zone
    out: list[Check] = []
    for d in drawers(store):
        if d.opening.at.astimezone(zone).date() >= today or d.status == "closed":
            continue
        if d.status == "open":
            out.append(
                Check(
                    name=f"Drawer {d.register_id}",
                    status="problem",
                    message=f"Drawer {d.session_id} opened {d.opening.at.astimezone(zone):%Y-%m-%d} is still open.",
                    action="Count it (blind count) and close it before opening today's drawer.",
                )
            )
        else:
            out.append(
                Check(
                    name=f"Drawer {d.register_id}",
                    status="problem",
                    message=f"Drawer {d.session_id} was counted with a variance nobody signed off.",
                    action="A manager signs the variance off with a note.",
                )
            )
    yesterday = today - timedelta(days=1)
    report = day_reports(store, yesterday, config.store.time_zone, now=now).store
    if not report.tie_out.ok:
        out.append(
            Check(
                name="Yesterday's Z report",
                status="problem",
                message=report.tie_out.sentence,
                action="Open yesterday's Z report and find the sale whose tenders do not add up.",
            )
        )
    if report.drawer_variance_cents:
        v = report.drawer_variance_cents
        out.append(
            Check(
                name="Yesterday's drawers",
                status="warn",
                message=f"Drawers were {'short' if v < 0 else 'over'} by ${abs(v) // 100}.{abs(v) % 100:02d} in all.",
                action="Read the sign-off notes in yesterday's Z report.",
            )
        )
    if not out:
        out.append(
            Check(
                name="Yesterday",
                status="ok",
                message="Every drawer closed and balanced; the Z report ties out.",
            )
        )
    return out


def _reconciliation(store: Store, now: datetime) -> list[Check]:
    last: datetime | None = None
    if "reconciliations" in store.tables:
        with store.read() as txn, txn.cursor(db=store.db("reconciliations")) as cur:
            for _, raw in cur:
                try:
                    rec = msgspec.msgpack.decode(bytes(raw))
                except msgspec.DecodeError:
                    continue
                values = rec.values() if isinstance(rec, dict) else ()
                for v in values:
                    if isinstance(v, datetime) and v.tzinfo is not None and (last is None or v > last):
                        last = v
    if last is None:
        return [
            Check(
                name="Reconciliation",
                status="warn",
                message="No reconciliation with the state system is on record.",
                action="Run a reconciliation from the Reconciliation page (at least every 30 days).",
            )
        ]
    age = (now - last).days
    if age > RECONCILE_MAX_DAYS:
        status: Status = "problem"
    elif age > RECONCILE_WARN_DAYS:
        status = "warn"
    else:
        status = "ok"
    return [
        Check(
            name="Reconciliation",
            status=status,
            message=f"The last reconciliation with the state system was {age} day{'s' if age != 1 else ''} ago.",
            action="" if status == "ok" else "Reconcile inventory with the state system today.",
        )
    ]


def readiness(
    store: Store,
    config: StoreConfig,
    *,
    now: datetime,
    device_health: Mapping[str, DeviceStatus] | None = None,
    state_health: Any = None,
    extra: list[Callable[[], list[Check]]] | None = None,
) -> Readiness:
    today = now.astimezone(config.zone).date()
    checks = [
        *_state_system(config, state_health),
        *_outbox(store, now),
        *_devices(device_health),
        *_yesterday(store, config, today, now),
        *_reconciliation(store, now),
    ]
    for fn in extra or ():
        checks.extend(fn())
    return Readiness(
        ready=not any(c.status == "problem" for c in checks), checked_at=now, checks=tuple(checks)
    )


def render_text(r: Readiness) -> str:
    mark = {"ok": "OK  ", "warn": "WARN", "problem": "FIX ", "unknown": "??  "}
    lines = [f"Ready to open: {'yes' if r.ready else 'NO'}"]
    for c in r.checks:
        lines.append(f"[{mark[c.status]}] {c.name}: {c.message}")
        if c.action:
            lines.append(f"       -> {c.action}")
    return "\n".join(lines) + "\n"
