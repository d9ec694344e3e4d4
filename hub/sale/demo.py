"""The demo store's register commands: a simulated scale reading and a simulated payment terminal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub.access import HandlerTable
from hub.commands import Request
from hub.errors import Forbidden
from hub.sale import protocol as p
from hub.sale.context import Refused, ScaleState, actor_of, ctx_of, paired_device

if TYPE_CHECKING:
    pass

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()


@HANDLERS.handles(p.DemoScale)
async def demo_scale(req: Request, msg: p.DemoScale) -> Any:
    hub = req.hub
    if not hub.config.server.demo:
        raise Forbidden("Only the demo store simulates a scale.")
    sim = hub.services.demo.scale.get(req.register_id)
    if sim is not None:
        sim.set(msg.weight_mg, motion=msg.motion)  # the real scale actor reads it from the pseudo-terminal
        return {}
    ctx = ctx_of(hub)
    device = paired_device(hub, req.register_id, "scale")
    ctx.scales[device] = ScaleState(
        device=device,
        weight_mg=msg.weight_mg,
        stable=not msg.motion,
        state="motion" if msg.motion else "stable",
        up=True,
        certificate="DEMO-NTEP-0000",
        at=datetime.now(UTC),
    )
    actor_of(req).publish()
    return {}


@HANDLERS.handles(p.DemoTerminal)
async def demo_terminal(req: Request, msg: p.DemoTerminal) -> Any:
    hub = req.hub
    if not hub.config.server.demo:
        raise Forbidden("Only the demo store simulates a terminal.")
    sim = hub.services.demo.terminal.get(req.register_id)
    if sim is None:
        raise Refused("The demo store runs without a simulated terminal.", code="no_terminal")
    sim.set_mode(msg.mode, decline_code=msg.decline_code, timeout_seconds=msg.timeout_seconds)
    actor_of(req).publish()
    return {}
