"""The union of every command the hub accepts on the live protocol, named one by one, and its decoder.

A newcomer reads here every message a register, a back-office screen or a picker can send. A feature's
commands live in its own ``protocol`` module; a new command is added there AND listed below (a test fails
when a ``Command`` subclass is missing from ``COMMANDS`` or has no handler).
"""

from __future__ import annotations

from typing import Any

import msgspec

from hub.backoffice import protocol as office
from hub.catalogue import protocol as catalogue
from hub.live.frames import (
    MAX_JSON_DEPTH,
    Command,
    CreatePairingCode,
    Envelope,
    Hello,
    Login,
    Logout,
    Pair,
    Ping,
    ProtocolError,
    ReportIncident,
    explain,
    json_depth_exceeds,
)
from hub.orders import protocol as orders
from hub.sale import protocol as sale

COMMANDS: tuple[type[Command], ...] = (
    # the session and the register (hub/live/frames.py)
    Pair,
    Hello,
    Login,
    Ping,
    Logout,
    CreatePairingCode,
    ReportIncident,
    # the sale (hub/sale/protocol.py)
    sale.Scan,
    sale.CheckInManual,
    sale.SetCustomerType,
    sale.EndCustomer,
    sale.Search,
    sale.AddPackage,
    sale.AddProduct,
    sale.SetQuantity,
    sale.WeighLine,
    sale.ManualWeight,
    sale.RemoveLine,
    sale.ApplyDiscount,
    sale.ClearDiscounts,
    sale.RedeemPoints,
    sale.ParkCart,
    sale.RecallCart,
    sale.Pay,
    sale.CancelPayment,
    sale.VoidSale,
    sale.ReturnItems,
    sale.OpenDrawer,
    sale.ScaleZero,
    sale.ScaleTare,
    sale.ReprintReceipt,
    sale.DemoScale,
    sale.DemoTerminal,
    sale.TakeCustomer,
    sale.LeaveQueue,
    sale.Browse,
    sale.LookUpReceipt,
    sale.PrintExitLabel,
    # the back office (hub/backoffice/protocol.py)
    office.OfficeOpenDrawer,
    office.DrawerMovement,
    office.BlindCount,
    office.SignOffDrawer,
    office.RecordDeposit,
    office.HandOverDrawer,
    office.StartCount,
    office.CountPackage,
    office.FinishCount,
    office.ApproveAdjustments,
    office.ReviewCashFlag,
    # online orders and picking (hub/orders/protocol.py)
    orders.AcceptOrder,
    orders.CancelOrder,
    orders.ClaimOrder,
    orders.ReleaseOrder,
    orders.PickScan,
    orders.ShortLine,
    orders.Substitute,
    orders.OrderReady,
    orders.RecallOrder,
    # the catalogue (hub/catalogue/protocol.py)
    catalogue.ApplyPromoCode,
    catalogue.RemovePromoCode,
)

_TYPES: dict[str, type[Command]] = {c.__struct_config__.tag: c for c in COMMANDS}  # type: ignore[misc]
if len(_TYPES) != len(COMMANDS):
    raise TypeError("two commands share a tag")


def _union(types: tuple[type, ...]) -> Any:
    u: Any = types[0]
    for t in types[1:]:
        u = u | t
    return u


_envelope = msgspec.json.Decoder(Envelope)
_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(_union(COMMANDS))


def command_types() -> dict[str, type[Command]]:
    """Every command by its tag."""
    return dict(_TYPES)


def decode_command(data: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Command:
    """Decode one client frame or raise ProtocolError with a clear, field-naming message."""
    if json_depth_exceeds(data, max_depth):
        raise ProtocolError(None, "malformed", f"The message nests deeper than {max_depth} levels.")
    try:  # a valid frame is decoded once; only a refused one is looked at again to say what is wrong
        return _decoder.decode(data)
    except msgspec.DecodeError:  # ValidationError included
        pass
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
    if env.type not in _TYPES:
        raise ProtocolError(msg_id, "unknown_type", f"Unknown message type {env.type!r}.", field="type")
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        field, text = explain(str(exc))
        raise ProtocolError(msg_id, "invalid", text, field=field) from None
