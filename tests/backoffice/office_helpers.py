"""Helpers for the back-office tests: a fake payment terminal, register set-up, cash in pieces, a sale."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hub.client import HubClient
from hub.domain.drawer import DENOMINATIONS
from tests.conftest import DEMO_PAIRING, PINS

FLOAT = {"B20": 10, "B5": 10, "C25": 40}  # $260.00


class FakeTerminal:
    """The payment-terminal interface the sale uses: charge, cancel, void, device_id, up."""

    device_id = "fake-terminal"
    up = True
    cashless_atm = None

    def __init__(self) -> None:
        self.charges: list[tuple[int, str]] = []
        self.voids: list[tuple[str, int]] = []

    async def void(self, reference: str, amount_cents: int) -> bool:
        self.voids.append((reference, amount_cents))
        return True

    async def charge(self, amount_cents: int, reference: str, on_progress: Any = None) -> Any:
        self.charges.append((amount_cents, reference))
        return SimpleNamespace(
            status="approved", approval_code=f"AP{len(self.charges):04d}", card_last4="4242"
        )

    async def cancel(self, ref: str) -> None:
        pass


async def ready(c: HubClient, register: str, staff: str) -> None:
    await c.pair(DEMO_PAIRING[register])
    await c.login(staff, PINS[staff])


def approval(reason: str, manager: str = "maria") -> dict[str, str]:
    return {"manager": manager, "pin": PINS[manager], "reason": reason}


def pieces(amount_cents: int) -> dict[str, int]:
    """Cash of exactly this amount in the fewest pieces (bills, then coins; no $2 bills or $1 coins)."""
    out: dict[str, int] = {}
    left = amount_cents
    for d in DENOMINATIONS:
        if d.code in ("B2", "C100"):
            continue
        n, left = divmod(left, d.cents)
        if n:
            out[d.code] = n
    assert left == 0
    return out


async def sell(
    c: HubClient, id_scan: str, tag: str, quantity: int, tender: str = "cash", extra: int = 0
) -> dict:
    """One sale at the register: check in, add the package, pay; returns the pay result and the total."""
    await c.request("scan", data=id_scan)
    await c.request("add_package", tag=tag, quantity=quantity)
    snap = await c.wait_snapshot(
        lambda s: s.get("cart") and sum(ln["quantity"] for ln in s["cart"]["lines"]) == quantity
    )
    total = snap["state"]["cart"]["total_cents"]
    paid = await c.request("pay", tenders=[{"kind": tender, "amount_cents": total + extra}])
    await c.wait_snapshot(lambda s: s.get("cart") is None)
    return {**paid, "total_cents": total, "cash_cents": total if tender == "cash" else 0}
