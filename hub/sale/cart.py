"""The cart at the register: scans, adding, weighing, quantities, discounts, points, park/recall, search.

Every change is refused whole when it breaks a limit or takes units an online order holds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from hub.access import HandlerTable
from hub.commands import Request
from hub.domain import aamva
from hub.domain import cart as carts
from hub.domain.cart import Cart, WeightReading
from hub.domain.cart import ManualWeight as ManualWeightValue
from hub.domain.catalog import Product, Refusal, format_quantity, sellability
from hub.domain.discounts import Discount, needs_manager
from hub.domain.scan_classify import ScanClass, classify
from hub.errors import NotFound
from hub.orders import stock as order_stock
from hub.sale import inventory as inv
from hub.sale import protocol as p
from hub.sale.approvals import approve
from hub.sale.checkin import apply_check_in, check_in_licence
from hub.sale.context import (
    Refused,
    RegisterSale,
    SaleContext,
    actor_of,
    cart_of,
    ctx_of,
    need_customer,
    notice,
    paired_device,
    refuse,
    sale_of,
    save,
    save_cart,
)
from hub.sale.view import current_limits, price_of

if TYPE_CHECKING:
    pass

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()


# not in the table: hub/sale/queue.py answers `scan` and calls this one unless a second ID at a busy
# register joins the queue
async def scan(req: Request, msg: p.Scan, sc: ScanClass | None = None) -> Any:
    """``sc``: the scan's classification when the caller made it already (hub/sale/queue.py)."""
    t0 = trio.current_time()
    ctx, sale = ctx_of(req.services), sale_of(actor_of(req))
    if sc is None:
        sc = classify(msg.data)
    # A serial scanner's licence is judged as bytes by the parser, so a refusal never blames a keyboard
    # wedge that was not there (classify's wedge reason is for typed input).
    serial_licence = sc.kind == "aamva" and msg.source == "serial"
    if not sc.valid and not serial_licence:
        notice(sale, "error", sc.reason)
        actor_of(req).publish()
        raise Refused(sc.reason, code="bad_scan")
    try:
        if sc.kind == "aamva":
            try:
                lic = aamva.parse_licence(sc.data.encode() if serial_licence else sc.data)
            except aamva.AamvaError as exc:
                raise Refused(str(exc), code="bad_id") from None
            for seen in ctx.licence_seen:
                seen(req.register_id, lic)
            checked = check_in_licence(ctx, lic, "adult")
            return await apply_check_in(req, sale, checked, f"scan:{msg.source}")
        if sc.kind in ("metrc_package", "biotrack_barcode"):
            return await _add_package(req, sale, sc.data, 1, kind="package")
        if sc.kind == "metrc_retail_id":
            # Retail ID is meant to be scanned at checkout: decoded offline to its package (hub/domain/retail_id.py).
            return await _add_package(req, sale, sc.package_label, 1, kind="package")
        if sc.kind in ("upc_a", "ean_13", "ean_8", "upc_e"):
            product = inv.product_by_barcode(req.store, sc.data)
            if product is None:
                raise Refused(f"No product with barcode {sc.data} in the catalogue.", code="unknown_barcode")
            return await _add_product(req, sale, product, 1, kind="product")
        raise Refused(
            f"That scan ({sc.kind}) is not a package tag, product barcode or ID.", code="unknown_scan"
        )
    finally:
        req.metrics.scan_seconds.observe(trio.current_time() - t0)


def _weight_for(ctx: SaleContext, req: Request) -> WeightReading | None:
    device = paired_device(req.config, req.services.devices, req.register_id, "scale")
    s = ctx.scales.get(device)
    if s is None or not s.up:
        return None
    return WeightReading(
        weight_mg=s.weight_mg, stable=s.stable, scale_id=s.device, certificate=s.certificate, read_at=s.at
    )


def _apply(sale: RegisterSale, result: carts.Change | Refusal) -> carts.Change:
    if isinstance(result, Refusal):
        notice(sale, "error", result.message)
        raise refuse(result)
    sale.cart = result.cart
    notice(sale, "info", result.message)
    return result


def limit_guard(ctx: SaleContext, sale: RegisterSale, before: Cart | None) -> None:
    """Allotment left is recomputed on every change; an item that would break a limit is refused."""
    customer = sale.customer
    if customer is None or customer.customer_class is None:
        return
    decision = current_limits(ctx, customer, sale.cart)
    if not decision.allowed:
        message = "; ".join(v.message for v in decision.violations)
        sale.cart = before
        notice(sale, "error", f"Over the limit: {message}")
        raise Refused(f"Over the limit: {message}", code="over_limit")


async def _add_package(
    req: Request,
    sale: RegisterSale,
    tag: str,
    quantity: int,
    weight: WeightReading | ManualWeightValue | None = None,
    kind: str = "package",
) -> dict[str, Any]:
    ctx = ctx_of(req.services)
    need_customer(sale)
    store = req.store
    with store.read() as txn:  # one read for the package, its product and whether an order holds it
        pkg = inv.package_in_txn(txn, store, tag)
        product = inv.product_in_txn(txn, store, pkg.product_id) if pkg else None
        held = product is not None and order_stock.holds(txn, store, product.id, except_order=sale.order_id)
    if product is not None and product.sold_by == "weight" and weight is None:
        weight = _weight_for(ctx, req)
    now = datetime.now(UTC)
    today = ctx.today()
    return await _change_cart(
        req,
        sale,
        kind,
        lambda cart: carts.add_package(cart, pkg, product, today, quantity=quantity, weight=weight, now=now),
        held=held,
        today=today,
    )


async def _change_cart(
    req: Request,
    sale: RegisterSale,
    kind: str,
    transition: Callable[[Cart], carts.Change | Refusal],
    *,
    held: bool | None = None,
    today: date | None = None,
) -> dict[str, Any]:
    """Apply one cart transition of the core; refuse it whole if it breaks a limit; save and publish.
    ``held``: whether an online order holds the changed line's product (``order_stock.holds``, read with
    the package; None: read it now)."""
    ctx = ctx_of(req.services)
    before = sale.cart
    try:
        change = _apply(sale, transition(cart_of(sale, req.register_id)))
        # units an online order holds are not for this cart (issue 14)
        refused = order_stock.cart_refusal(
            req.store,
            change.cart,
            change.line_id,
            today or ctx.today(),
            except_order=sale.order_id,
            held=held,
        )
        if refused is not None:
            notice(sale, "error", refused.message)
            raise refuse(refused)
    except Refused:
        sale.cart = before
        actor_of(req).publish()
        raise
    _limit_guard_publish(req, ctx, sale, before)
    return await save_cart(req, sale, reply={"kind": kind, "line": change.line_id, "message": change.message})


def _limit_guard_publish(req: Request, ctx: SaleContext, sale: RegisterSale, before: Cart | None) -> None:
    try:
        limit_guard(ctx, sale, before)
    except Refused:
        actor_of(req).publish()
        raise


async def _add_product(
    req: Request, sale: RegisterSale, product: Product, quantity: int, kind: str = "product"
) -> dict[str, Any]:
    ctx = ctx_of(req.services)
    need_customer(sale)
    packages = inv.packages_of(req.store, product.id)
    weight = _weight_for(ctx, req) if product.sold_by == "weight" else None
    now = datetime.now(UTC)
    today = ctx.today()
    return await _change_cart(
        req,
        sale,
        kind,
        lambda cart: carts.add_by_barcode(
            cart, product, packages, today, quantity=quantity, weight=weight, now=now
        ),
        today=today,
    )


@HANDLERS.handles(p.AddPackage)
async def add_package(req: Request, msg: p.AddPackage) -> Any:
    return await _add_package(req, sale_of(actor_of(req)), msg.tag.strip(), msg.quantity)


@HANDLERS.handles(p.AddProduct)
async def add_product(req: Request, msg: p.AddProduct) -> Any:
    product = inv.product(req.store, msg.product_id)
    if product is None:
        raise NotFound(f"No product {msg.product_id!r} in the catalogue.")
    return await _add_product(req, sale_of(actor_of(req)), product, msg.quantity)


@HANDLERS.handles(p.WeighLine)
async def weigh_line(req: Request, msg: p.WeighLine) -> Any:
    ctx, sale = ctx_of(req.services), sale_of(actor_of(req))
    weight = _weight_for(ctx, req)
    if weight is None:
        raise Refused("No scale is connected to this register.", code="no_scale")
    if not weight.stable:
        raise Refused("The scale is still moving: wait for a stable reading.", code="scale_motion")
    tag = msg.tag.strip()
    line = _weighed_line(sale, tag, msg.line)
    if line is not None:
        return await _reweigh(req, sale, line, weight)
    return await _add_package(req, sale, tag, 1, weight)


@HANDLERS.handles(p.ManualWeight)
async def manual_weight(req: Request, msg: p.ManualWeight) -> Any:
    sale = sale_of(actor_of(req))
    override = await approve(
        req, msg.approval, "typed weight", detail={"tag": msg.tag, "weight_mg": msg.weight_mg}
    )
    weight = ManualWeightValue(weight_mg=msg.weight_mg, override=override)
    tag = msg.tag.strip()
    line = _weighed_line(sale, tag, msg.line)
    if line is not None:
        return await _reweigh(req, sale, line, weight)
    return await _add_package(req, sale, tag, 1, weight)


def _weighed_line(sale: RegisterSale, tag: str, line_id: int | None) -> int | None:
    """The line a Weigh press is about: the one named, else the cart's weighed line of this package (the
    Weigh button sits on that line: pressing it again re-weighs it, it does not add a second bag)."""
    cart = sale.cart
    if cart is None:
        if line_id is not None:
            raise Refused(f"There is no line {line_id} in the cart.", code="line_not_found")
        return None
    if line_id is not None:
        found = cart.line(line_id)
        if found is None or found.package_tag != tag:
            raise Refused(f"Line {line_id} of the cart is not package {tag}.", code="line_not_found")
        return line_id
    weighed = [ln.line_id for ln in cart.lines if ln.package_tag == tag and ln.sold_by == "weight"]
    return weighed[-1] if weighed else None


async def _reweigh(
    req: Request, sale: RegisterSale, line_id: int, weight: WeightReading | ManualWeightValue
) -> dict[str, Any]:
    ctx = ctx_of(req.services)
    need_customer(sale)
    cart = cart_of(sale, req.register_id)
    line = cart.line(line_id)
    assert line is not None
    store = req.store
    with store.read() as txn:
        pkg = inv.package_in_txn(txn, store, line.package_tag)
        product = inv.product_in_txn(txn, store, line.product_id)
        held = order_stock.holds(txn, store, line.product_id, except_order=sale.order_id)
    today = ctx.today()
    return await _change_cart(
        req,
        sale,
        "reweigh",
        lambda c: carts.reweigh(c, line_id, weight, pkg, product, today),
        held=held,
        today=today,
    )


@HANDLERS.handles(p.SetQuantity)
async def set_quantity(req: Request, msg: p.SetQuantity) -> Any:
    ctx, sale = ctx_of(req.services), sale_of(actor_of(req))
    cart = cart_of(sale, req.register_id)
    line = cart.line(msg.line)
    pkg = inv.package(req.store, line.package_tag) if line else None
    product = inv.product(req.store, line.product_id) if line else None
    before = sale.cart
    _apply(sale, carts.set_quantity(cart, msg.line, msg.quantity, pkg, product, ctx.today()))
    _limit_guard_publish(req, ctx, sale, before)
    return await save_cart(req, sale, reply={})


@HANDLERS.handles(p.RemoveLine)
async def remove_line(req: Request, msg: p.RemoveLine) -> Any:
    sale = sale_of(actor_of(req))
    _apply(sale, carts.remove_line(cart_of(sale, req.register_id), msg.line))
    return await save_cart(req, sale, reply={})


@HANDLERS.handles(p.ApplyDiscount)
async def apply_discount(req: Request, msg: p.ApplyDiscount) -> Any:
    ctx, sale = ctx_of(req.services), sale_of(actor_of(req))
    cart = cart_of(sale, req.register_id)
    value = msg.value * 100 if msg.kind == "percent" else msg.value  # percent -> basis points
    d = Discount(kind=msg.kind, value=value, reason=msg.reason, applied_by=req.staff_id)
    policy = ctx.settings.discount_policy
    priced = price_of(ctx, cart, sale)
    amount = (
        priced.line(msg.line).price_cents
        if msg.line is not None and cart.line(msg.line)
        else priced.net_cents
    )
    role = req.role
    if needs_manager(d, amount, role, policy):
        if msg.approval is None:
            raise Refused(
                "This discount is more than your role may give: a manager must approve it.",
                code="approval_required",
            )
        override = await approve(req, msg.approval, "discount", detail={"kind": msg.kind, "value": msg.value})
        d = msgspec.structs.replace(d, override_ref=override.reference)
        role = "manager"
    if msg.line is not None:
        _apply(sale, carts.add_line_discount(cart, msg.line, d, role=role, policy=policy))
    else:
        _apply(sale, carts.add_cart_discount(cart, d, role=role, policy=policy))
    return await save_cart(req, sale, reply={})


@HANDLERS.handles(p.ClearDiscounts)
async def clear_discounts(req: Request, msg: p.ClearDiscounts) -> Any:
    sale = sale_of(actor_of(req))
    _apply(sale, carts.clear_discounts(cart_of(sale, req.register_id)))
    return await save_cart(req, sale, reply={})


@HANDLERS.handles(p.RedeemPoints)
async def redeem_points(req: Request, msg: p.RedeemPoints) -> Any:
    sale = sale_of(actor_of(req))
    c = need_customer(sale)
    _apply(sale, carts.redeem_points(cart_of(sale, req.register_id), msg.points, c.loyalty_points))
    return await save_cart(req, sale, reply={})


@HANDLERS.handles(p.ParkCart)
async def park_cart(req: Request, msg: p.ParkCart) -> Any:
    sale = sale_of(actor_of(req))
    change = _apply(sale, carts.park(cart_of(sale, req.register_id), datetime.now(UTC)))
    sale.parked.append(change.cart)
    sale.cart = None
    sale.customer = None
    sale.order_id = ""
    return await save(req, sale, reply={"cart_id": change.cart.cart_id})


@HANDLERS.handles(p.RecallCart)
async def recall_cart(req: Request, msg: p.RecallCart) -> Any:
    sale = sale_of(actor_of(req))
    found = next((c for c in sale.parked if c.cart_id == msg.cart_id), None)
    if found is None:
        raise NotFound("That parked cart is not on this register.")
    if sale.cart is not None and sale.cart.lines:
        raise Refused("Park or finish the current cart first.", code="cart_busy")
    change = _apply(sale, carts.recall(found))
    sale.parked.remove(found)
    sale.cart = change.cart
    sale.customer = None
    notice(sale, "info", "Cart recalled: scan the customer's ID again before paying.")
    return await save(req, sale, reply={})


@HANDLERS.handles(p.Search, idempotent=False)
async def search(req: Request, msg: p.Search) -> Any:
    ctx = ctx_of(req.services)
    out = []
    today = ctx.today()
    for product in ctx.index.search(msg.query, limit=msg.limit):
        pkgs = inv.packages_of(req.store, product.id)
        stock = sum(pk.quantity for pk in pkgs if sellability(pk, product, today, 1) is None)
        labs = {pk.lab_testing for pk in pkgs}
        out.append(
            {
                "id": product.id,
                "name": product.name,
                "brand": product.brand,
                "category": product.category,
                "strain": product.strain,
                "price_cents": product.price_cents,
                "sold_by": product.sold_by,
                "stock_text": format_quantity(product, stock),
                "thc_text": potency(product.thc_bp, product.thc_mg_per_unit),
                "cbd_text": potency(product.cbd_bp, product.cbd_mg_per_unit),
                "lab_testing": "passed" if "passed" in labs else (sorted(labs)[0] if labs else "none"),
                "coa_ref": product.coa_ref,
            }
        )
    return {"products": out}


def potency(bp: int, mg: int) -> str:
    if mg:
        return f"{mg} mg"
    return f"{bp // 100}.{bp % 100:02d}%" if bp else ""
