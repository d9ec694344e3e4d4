"""Back office truth (issue 11): readiness decides on the state channel's error classes, never on the
text of an error; dead letters count once; a sale the state accepted is "reported" in the Z report."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import trio

from hub.backoffice import readiness
from hub.backoffice.records import day_reports
from hub.domain.receipt import SaleRecord
from hub.state_channel.feature import StateHealthView
from hub.store.keys import u64
from tests.state.conftest import World, connect, ready, sell, ws_url


class _Actor:
    def __init__(self, **status: Any) -> None:
        self._status = status

    def status(self) -> dict[str, Any]:
        return {"backlog": 1, "last_sent_at": None, "paused_until": None, "last_error": "", **self._status}


def _health(**status: Any) -> StateHealthView:
    return StateHealthView(SimpleNamespace(actor=_Actor(**status)))  # type: ignore[arg-type]


def test_credentials_are_judged_by_the_error_class_not_its_text() -> None:
    # a row error naming a package whose tag happens to contain "403" is not a credentials problem
    row = _health(
        last_outcome="rejected",
        last_error="Package 1A4060300000403000000123 is finished; it cannot be sold.",
    )
    assert row.get("credentials_ok") is True and row.get("reachable") is True
    refused = _health(last_outcome="auth", last_error="The state refused the request.")
    assert refused.get("credentials_ok") is False
    # an outage, whatever its message says, while the channel waits
    down = _health(
        last_outcome="unavailable", last_error="no route", paused_until=datetime.now(UTC).isoformat()
    )
    assert down.get("reachable") is False and down.get("credentials_ok") is True
    # the last answer was a success: an old error's text does not linger
    ok = _health(last_outcome="sent", last_error="")
    assert ok.get("credentials_ok") is True and ok.get("reachable") is True


async def test_dead_letters_count_once_and_accepted_sales_are_reported(world: World) -> None:
    w = world
    tags = [p.tag for p in w.unit_packages("PRE-", 3)]
    bad = tags[2]
    state = await w.admin.state()
    row = next(p for p in state["packages"] if p["label"] == bad)
    await w.admin.upsert_packages(
        [
            {
                "label": bad,
                "item_name": row["item_name"],
                "category": row["category"],
                "unit": "Each",
                "quantity": row["quantity"],
                "finished": True,  # the state will refuse the sale of this one: a dead letter
            }
        ]
    )
    adult = w.demo.customer("adult").id_scan
    with trio.fail_after(30):
        async with connect(ws_url(w.hub)) as c:
            await ready(c)
            good = await sell(c, adult, tags[0])
            await sell(c, adult, bad)
        while len(await w.receipts()) < 1 or not any(e.state == "dead" for e in w.outbox()):
            await trio.sleep(0.05)
    now = datetime.now(UTC)
    r = readiness.readiness(w.hub.store, w.hub.config, now=now, state_health=w.hub.services.state_health)
    dead = [c for c in r.checks if c.name == "Dead letters"]
    assert len(dead) == 1 and dead[0].message.startswith("1 entry was"), dead
    state_check = next(c for c in r.checks if c.name == "State system")
    assert state_check.status == "ok", state_check
    record = w.hub.store.get("sales", u64(good["receipt_number"]), SaleRecord)
    assert record is not None and record.state_status == "reported"
    today = now.astimezone(w.hub.config.zone).date()
    z = day_reports(w.hub.store, today, w.hub.config.store.time_zone, now=now).store
    assert f"sale {good['receipt_number']}" not in z.unreported
    assert z.unreported  # the refused one is not at the state
