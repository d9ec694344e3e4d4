"""The picker's commands: accept, cancel, claim, release, pick by scanning, short, substitute, ready (with
its bag label). Each is one change of ``hub.orders.service``; the decisions are ``hub.domain.orders``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import lmdb

from drivers.zpl import render_bag_label
from hub.access import HandlerTable
from hub.commands import Request
from hub.domain import orders as core
from hub.domain.cart import WeightReading
from hub.domain.catalog import Product, Refusal
from hub.domain.devices import BagLabel, PrintBagLabel
from hub.domain.limits.engine import LimitCustomer, evaluate
from hub.domain.orders import Order
from hub.domain.scan_classify import classify
from hub.errors import HubError, NotFound
from hub.orders import protocol as op
from hub.orders import store as ostore
from hub.orders.metrics import observe_pick
from hub.orders.service import (
    accept_in_txn,
    change_in_txn,
    ctx_of,
    free_map_in_txn,
    limits_view,
    order_limit_items,
    run_change,
)
from hub.sale import inventory as inv
from hub.sale.context import Refused, paired_device
from hub.sale.context import ctx_of as sale_ctx_of

if TYPE_CHECKING:
    from hub.services import HubParts, Services

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()


def _by(req: Request) -> str:
    return req.staff_id


@HANDLERS.handles(op.AcceptOrder)
async def accept_order(req: Request, msg: op.AcceptOrder) -> Any:
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> Any:
        o = accept_in_txn(txn, req, msg.order_id, by=_by(req), register=req.register_id, now=now)
        return {"order_id": o.id, "state": o.state}

    return await run_change(req, fn)


@HANDLERS.handles(op.CancelOrder, role="technician")
async def cancel_order(req: Request, msg: op.CancelOrder) -> Any:
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> Any:
        o = change_in_txn(
            txn,
            req,
            msg.order_id,
            lambda o: core.cancel(o, now, _by(req), msg.reason),
            by=_by(req),
            register=req.register_id,
            detail={"reason": msg.reason},
            now=now,
        )
        return {"order_id": o.id, "state": o.state}

    return await run_change(req, fn)


@HANDLERS.handles(op.ClaimOrder)
async def claim_order(req: Request, msg: op.ClaimOrder) -> Any:
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> Any:
        o = change_in_txn(
            txn,
            req,
            msg.order_id,
            lambda o: core.claim(o, req.register_id, now, _by(req)),
            by=_by(req),
            register=req.register_id,
            now=now,
        )
        return {"order_id": o.id, "state": o.state, "picker": o.picker}

    return await run_change(req, fn)


@HANDLERS.handles(op.ReleaseOrder)
async def release_order(req: Request, msg: op.ReleaseOrder) -> Any:
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> Any:
        o = change_in_txn(
            txn,
            req,
            msg.order_id,
            lambda o: core.release(o, req.register_id, now, _by(req)),
            by=_by(req),
            register=req.register_id,
            now=now,
        )
        return {"order_id": o.id, "state": o.state}

    return await run_change(req, fn)


def scale_reading(hub: HubParts, register_id: str) -> WeightReading | None:
    """The stable-or-not reading of the scale paired with this picking station (as at the register)."""
    device = paired_device(hub.config, hub.services.devices, register_id, "scale")
    s = sale_ctx_of(hub.services).scales.get(device)
    if s is None or not s.up:
        return None
    return WeightReading(
        weight_mg=s.weight_mg, stable=s.stable, scale_id=s.device, certificate=s.certificate, read_at=s.at
    )


def tag_of(data: str) -> str:
    sc = classify(data)
    if sc.kind in ("metrc_package", "biotrack_barcode"):
        return sc.data
    if sc.kind == "metrc_retail_id":
        return sc.package_label
    raise Refused(
        sc.reason if not sc.valid else f"That scan ({sc.kind}) is not a package tag.", code="not_a_tag"
    )


@HANDLERS.handles(op.PickScan)
async def pick_scan(req: Request, msg: op.PickScan) -> Any:
    try:
        tag = tag_of(msg.data.strip())
    except HubError as exc:
        req.register.show_pick({"ok": False, "code": exc.code, "message": exc.message, "tag": ""})
        raise
    weight = scale_reading(req, req.register_id)
    today = ctx_of(req.services).today()
    now = datetime.now(UTC)
    picked: dict[str, Any] = {}

    def fn(txn: lmdb.Transaction) -> Any:
        store = req.store
        pkg = inv.package_in_txn(txn, store, tag)
        product = inv.product_in_txn(txn, store, pkg.product_id) if pkg else None
        res = ostore.reservations_in_txn(txn, store, pkg.product_id) if pkg else None

        def decide(o: Order) -> Order | Refusal:
            bound = res.bound(tag, except_order=o.id) if res is not None else 0
            r = core.pick(
                o,
                req.register_id,
                pkg,
                product,
                today,
                bound_elsewhere=bound,
                now=now,
                by=_by(req),
                weight=weight,
            )
            if isinstance(r, Refusal):
                return r
            picked["line"] = r[1]
            return r[0]

        o = change_in_txn(
            txn,
            req,
            msg.order_id,
            decide,
            by=_by(req),
            register=req.register_id,
            event="order_pick",
            detail={"tag": tag},
            now=now,
        )
        line = o.line(picked["line"])
        assert line is not None
        return {
            "order_id": o.id,
            "line": line.line_id,
            "tag": tag,
            "picked": line.picked,
            "complete": line.complete,
            "message": f"{line.product_name}: picked {tag}.",
        }

    actor = req.register
    try:
        result = await run_change(req, fn)
    except HubError as exc:
        actor.show_pick({"ok": False, "code": exc.code, "message": exc.message, "tag": tag})
        raise
    actor.show_pick({"ok": True, "code": "picked", "message": result["message"], "tag": tag})
    return result


def _catalogue(services: Services) -> list[Product]:
    return sale_ctx_of(services).index.products()  # the in-memory catalogue


@HANDLERS.handles(op.ShortLine)
async def short_line(req: Request, msg: op.ShortLine) -> Any:
    now = datetime.now(UTC)
    today = ctx_of(req.services).today()
    catalogue = _catalogue(req.services)

    def fn(txn: lmdb.Transaction) -> Any:
        o = change_in_txn(
            txn,
            req,
            msg.order_id,
            lambda o: core.mark_short(o, req.register_id, msg.line, now, _by(req)),
            by=_by(req),
            register=req.register_id,
            event="order_short",
            detail={"line": msg.line},
            now=now,
        )
        line = o.line(msg.line)
        assert line is not None
        cands, missing = candidates_in_txn(txn, req, o, line.line_id, catalogue, today, now)
        auto = core.preferred_substitute(o.substitution, missing, cands) if missing else None
        out: dict[str, Any] = {
            "order_id": o.id,
            "line": line.line_id,
            "short_by": core.shortfall(line),
            "candidates": [candidate_view(p) for p in cands],
            "substituted": None,
        }
        if auto is not None and line.picked < line.quantity:
            o = _substitute_in_txn(txn, req, o.id, line.line_id, auto, "customer preference", now, today)
            out["substituted"] = auto.id
        return out

    return await run_change(req, fn)


def candidate_view(p: Product) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "brand": p.brand,
        "price_cents": p.price_cents,
        "thc_bp": p.thc_bp,
        "sold_by": p.sold_by,
    }


def candidates_in_txn(
    txn: lmdb.Transaction,
    hub: HubParts,
    o: Order,
    line_id: int,
    catalogue: list[Product],
    today: date,
    now: datetime,
) -> tuple[list[Product], Product | None]:
    line = o.line(line_id)
    missing = inv.product_in_txn(txn, hub.store, line.product_id) if line else None
    if line is None or missing is None:
        return [], None
    need = core.shortfall(line)
    same = [p for p in catalogue if p.category == missing.category and p.id != missing.id]
    free = free_map_in_txn(txn, hub, {p.id for p in same}, today)
    products = {p.id: p for p in catalogue}
    customer_id = o.customer.store_customer_id

    def fits(p: Product, qty: int) -> bool:
        items = order_limit_items(o, products, (p, qty))
        if customer_id:
            view = limits_view(hub, customer_id, items, now, txn)
            if view.get("checked"):
                return bool(view["allowed"])
        j = sale_ctx_of(hub.services).jurisdiction
        return evaluate(j, LimitCustomer(customer_class="adult", age=21), (), items, now).allowed

    return core.substitution_candidates(missing, need, same, free, fits), missing


def _substitute_in_txn(
    txn: lmdb.Transaction,
    req: Request,
    order_id: str,
    line_id: int,
    product: Product,
    how: str,
    now: datetime,
    today: date,
) -> Order:
    def decide(o: Order) -> Order | Refusal:
        line = o.line(line_id)
        qty = core.shortfall(line) if line is not None else 0
        free = ostore.free_in_txn(txn, req.store, product, today)
        return core.substitute(o, req.register_id, line_id, product, qty, free, now, _by(req), how)

    return change_in_txn(
        txn,
        req,
        order_id,
        decide,
        by=_by(req),
        register=req.register_id,
        event="order_substitution",
        detail={"line": line_id, "product": product.id, "how": how},
        notice_kind="substitution",
        now=now,
    )


@HANDLERS.handles(op.Substitute)
async def substitute(req: Request, msg: op.Substitute) -> Any:
    now = datetime.now(UTC)
    today = ctx_of(req.services).today()
    catalogue = _catalogue(req.services)

    def fn(txn: lmdb.Transaction) -> Any:
        o = ostore.order_in_txn(txn, req.store, msg.order_id)
        if o is None:
            raise NotFound(f"There is no order {msg.order_id!r}.")
        cands, _ = candidates_in_txn(txn, req, o, msg.line, catalogue, today, now)
        product = next((p for p in cands if p.id == msg.product_id), None)
        if product is None:
            raise Refused(
                f"{msg.product_id} is not a substitute for line {msg.line} (category, stock or limits).",
                code="not_a_candidate",
            )
        o = _substitute_in_txn(txn, req, o.id, msg.line, product, "confirmed by staff", now, today)
        return {"order_id": o.id, "line": o.lines[-1].line_id, "product_id": product.id}

    return await run_change(req, fn)


@HANDLERS.handles(op.OrderReady)
async def order_ready(req: Request, msg: op.OrderReady) -> Any:
    now = datetime.now(UTC)
    devices = req.services.devices
    printer = paired_device(req.config, req.services.devices, req.register_id, "label_printer")
    inbox = devices.inboxes.get(printer) if devices is not None else None
    done: dict[str, Order] = {}

    def fn(txn: lmdb.Transaction) -> Any:
        o = change_in_txn(
            txn,
            req,
            msg.order_id,
            lambda o: core.mark_ready(o, req.register_id, now, _by(req)),
            by=_by(req),
            register=req.register_id,
            now=now,
        )
        done["order"] = o
        label = bag_label(o)
        return {
            "order_id": o.id,
            "state": o.state,
            "label": {
                "printer": printer if inbox is not None else "",
                "zpl": render_bag_label(label).decode(),
            },
        }

    result = await run_change(req, fn)
    o = done.get("order")
    if o is not None:  # a retried id is answered from the stored reply; the label was printed then
        if o.claimed_at is not None:
            observe_pick(req.services, (now - o.claimed_at).total_seconds())
        if inbox is not None:
            await inbox.send(PrintBagLabel(job_id=f"bag-{o.id}", label=bag_label(o)))
    return result


def bag_label(o: Order) -> BagLabel:
    return BagLabel(
        order_id=o.id,
        customer=o.customer.name,
        fulfilment=o.fulfilment,
        tags=sorted({p.tag for ln in o.lines for p in ln.picks}),
    )
