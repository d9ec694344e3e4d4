"""The register actor and the sale's context read typed parts of the hub, never the hub itself (issue 13,
item 1: "a Request carries what its handler needs, not the whole hub"; item 3: an actor that owns its state)."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from actors.picker import PickerActor
from actors.register import RegisterActor, RegisterParts
from hub.app import Hub
from hub.client import connect
from hub.orders.feature import OrdersOptions
from hub.sale.context import SaleContext
from hub.wiring import Features, SaleOptions
from tests.conftest import DEMO_PAIRING, PINS, make_config, ws_url

ROOT = Path(__file__).resolve().parents[2]
PICKER = """
[[registers]]
id = "P1"
name = "Picker 1"
kind = "picker"
"""


def _holds(obj: Any, target: object) -> list[str]:
    """The names of ``obj``'s own attributes that are ``target`` itself."""
    values = (
        {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        if dataclasses.is_dataclass(obj)
        else vars(obj)
    )
    return [name for name, value in values.items() if value is target]


def test_no_module_reaches_the_hub_through_an_actor_or_the_sale_context() -> None:
    """The issue's own check: ``grep -rn "actor\\.hub\\|ctx\\.hub" hub actors`` finds nothing."""
    pattern = re.compile(r"\b(actor|ctx)\.hub\b")
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for folder in ("hub", "actors")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


def test_the_register_and_the_sale_context_are_not_built_from_a_hub() -> None:
    for cls in (RegisterActor, PickerActor, SaleContext):
        params = inspect.signature(cls.__init__).parameters
        assert "hub" not in params, cls
        for p in params.values():
            assert "Hub" not in re.findall(r"\b\w+\b", str(p.annotation)), (cls, p)
    assert "hub" not in {f.name for f in dataclasses.fields(RegisterParts)}


async def test_a_running_hubs_registers_and_sale_hold_their_parts_not_the_hub(
    hub_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """Built, then used (pairing, a login, snapshots sent, the sale loaded): no register, its parts or the
    sale's context has a ``hub`` attribute or any attribute that is the hub."""
    features = Features(sale=SaleOptions(demo=True), orders=OrdersOptions())
    hub: Hub = await hub_factory(make_config(tmp_path / "data", PICKER), features=features)
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as c:
            await c.pair(DEMO_PAIRING["R1"])
            await c.login("maria", PINS["maria"])
            await c.request("report_incident", category="other", description="parts only")
    assert isinstance(hub.registers["P1"], PickerActor)
    assert hub.registers["R1"].sale is not None  # the sale's loader ran through the parts' store
    ctx = hub.services.sale
    assert ctx is not None
    for actor in hub.registers.values():
        assert not hasattr(actor, "hub"), actor.id
        assert _holds(actor, hub) == [] and _holds(actor.parts, hub) == [], actor.id
        # the hub's own open store, writer and tables: a login on one screen is seen by the others
        p = actor.parts
        assert p.store is hub.store and p.writer is hub.writer and p.config is hub.config
        assert p.services is hub.services and p.metrics is hub.metrics and p.replies is hub.replies
        assert p.sessions is hub.sessions and p.registers is hub.registers
    assert not hasattr(ctx, "hub") and _holds(ctx, hub) == []
    assert ctx.store is hub.store and ctx.config is hub.config
