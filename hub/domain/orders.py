"""Online orders as a core aggregate beside the sale: the state machine, reservations, the pick list and
substitution candidates. Pure decisions over msgspec Structs: no I/O, no clock, the caller passes ``now``.

States: ``received → accepted → picking → ready → completed | cancelled | expired``. Accepting reserves the
ordered quantities (registers and the menu see them as taken); picking binds specific package tags; a short
line gives its unpicked reservation back; cancellation, expiry and completion release everything (the
completed order's stock leaves with the sale in the same transaction).

Quantities are units for products sold each and milligrams for products sold by weight, as on ``Package``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Annotated, Literal

import msgspec

from hub.domain.cart import WeightReading
from hub.domain.catalog import Package, Product, Refusal, format_quantity, sellability

OrderState = Literal["received", "accepted", "picking", "ready", "completed", "cancelled", "expired"]
Fulfilment = Literal["pickup", "curbside"]
SubstitutionPreference = Literal["none", "same_product_other_size", "similar"]
OPEN_STATES: frozenset[str] = frozenset({"received", "accepted", "picking", "ready"})
RESERVING_STATES: frozenset[str] = frozenset({"accepted", "picking", "ready"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"accepted", "cancelled", "expired"}),
    "accepted": frozenset({"picking", "cancelled", "expired"}),
    "picking": frozenset({"accepted", "ready", "cancelled", "expired"}),
    "ready": frozenset({"completed", "cancelled", "expired", "picking"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
    "expired": frozenset(),
}
# a weighed pick may land a little over or under what was ordered (nobody cuts a bud to the milligram)
WEIGHT_TOLERANCE_PPM = 50_000
# "similar" is applied without asking the customer, so it must stay what they would recognise as the same
# thing at the same money: potency and price each within a quarter of the ordered product's. A quarter is
# about one price tier and one potency step of a dispensary menu (e.g. 20 % -> 25 % THC flower, $40 -> $50);
# anything further is a different product and goes to staff, who ask the customer.
SIMILAR_BAND_PERCENT = 25

Short = Annotated[str, msgspec.Meta(max_length=120)]


# ---------------------------------------------------------------------------------------------- intake
class IntakeCustomer(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    birth_date: date
    phone: Annotated[str, msgspec.Meta(max_length=32, pattern=r"^[+0-9 ()-]*$")] = ""
    email: Annotated[str, msgspec.Meta(max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$")] = ""
    # medical patient or caregiver registration number, when the order is a medical one
    medical_number: Annotated[str, msgspec.Meta(max_length=64)] = ""
    caregiver: bool = False
    # the store's own customer id, when the channel knows it (loyalty account): enables the limits pre-check
    store_customer_id: Annotated[str, msgspec.Meta(max_length=64)] = ""


class IntakeLine(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    product_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    sku: Annotated[str, msgspec.Meta(max_length=64)] = ""
    quantity: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    weight_mg: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0


class OrderIntake(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body of ``POST /api/v1/orders``, bounded before anything else reads it."""

    external_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    customer: IntakeCustomer
    lines: Annotated[list[IntakeLine], msgspec.Meta(min_length=1, max_length=50)]
    fulfilment: Fulfilment = "pickup"
    # with its offset: a naive time cannot be compared with the hub's clock (expiry, lateness, the queue)
    promised_at: Annotated[datetime, msgspec.Meta(tz=True)]
    substitution: SubstitutionPreference = "none"
    notes: Annotated[str, msgspec.Meta(max_length=1000)] = ""


# ---------------------------------------------------------------------------------------------- the order
class OrderCustomer(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    birth_date: date
    phone: str = ""
    email: str = ""
    medical_number: str = ""
    caregiver: bool = False
    store_customer_id: str = ""


class PickedPackage(msgspec.Struct, frozen=True, kw_only=True):
    tag: str
    quantity: int  # units, or mg for a weighed line
    at: datetime
    by: str
    scale_id: str = ""
    scale_certificate: str = ""


class OrderLine(msgspec.Struct, frozen=True, kw_only=True):
    line_id: int
    product_id: str
    product_name: str
    sold_by: Literal["each", "weight"]
    quantity: int  # ordered: units, or mg
    reserved: int = 0
    picks: tuple[PickedPackage, ...] = ()
    short: bool = False  # the picker found no more: the unpicked rest is given back
    substitute_for: int = 0  # this line replaces (part of) that short line
    substituted_by: int = 0

    @property
    def picked(self) -> int:
        return sum(p.quantity for p in self.picks)

    @property
    def remaining(self) -> int:
        return max(self.quantity - self.picked, 0)

    @property
    def complete(self) -> bool:
        if self.short:
            return True
        if self.sold_by == "weight":
            return self.picked * 1_000_000 >= self.quantity * (1_000_000 - WEIGHT_TOLERANCE_PPM)
        return self.picked >= self.quantity


class OrderEvent(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    state: str
    by: str = ""
    note: str = ""


class Order(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    channel: str
    external_id: str
    body_hash: str
    state: OrderState
    customer: OrderCustomer
    lines: tuple[OrderLine, ...]
    fulfilment: Fulfilment
    promised_at: datetime
    substitution: SubstitutionPreference
    created_at: datetime
    updated_at: datetime
    notes: str = ""
    picker: str = ""  # the handheld that holds the order while it is picked
    picked_by: str = ""
    claimed_at: datetime | None = None
    accepted_at: datetime | None = None
    ready_at: datetime | None = None
    closed_at: datetime | None = None
    receipt_number: int = 0
    flags: tuple[str, ...] = ()
    history: tuple[OrderEvent, ...] = ()
    next_line_id: int = 1

    def line(self, line_id: int) -> OrderLine | None:
        return next((ln for ln in self.lines if ln.line_id == line_id), None)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


def new_order(
    order_id: str,
    channel: str,
    body_hash: str,
    intake: OrderIntake,
    products: Mapping[str, Product],
    now: datetime,
) -> Order:
    """The order as received; ``products`` maps each intake line's product id or SKU to the product."""
    lines = []
    for i, ln in enumerate(intake.lines, start=1):
        product = products[ln.product_id or ln.sku]
        qty = ln.weight_mg if product.sold_by == "weight" else ln.quantity
        lines.append(
            OrderLine(
                line_id=i,
                product_id=product.id,
                product_name=product.name,
                sold_by=product.sold_by,
                quantity=qty,
            )
        )
    c = intake.customer
    return Order(
        id=order_id,
        channel=channel,
        external_id=intake.external_id,
        body_hash=body_hash,
        state="received",
        customer=OrderCustomer(
            name=c.name,
            birth_date=c.birth_date,
            phone=c.phone,
            email=c.email,
            medical_number=c.medical_number,
            caregiver=c.caregiver,
            store_customer_id=c.store_customer_id,
        ),
        lines=tuple(lines),
        fulfilment=intake.fulfilment,
        promised_at=intake.promised_at,
        substitution=intake.substitution,
        notes=intake.notes,
        created_at=now,
        updated_at=now,
        history=(OrderEvent(at=now, state="received", by=f"channel:{channel}"),),
        next_line_id=len(lines) + 1,
    )


def intake_problem(intake: OrderIntake, products: Mapping[str, Product | None]) -> tuple[str, str] | None:
    """(field, message) for the first line the store cannot take as written, else None."""
    for i, ln in enumerate(intake.lines):
        where = f"lines[{i}]"
        if bool(ln.product_id) == bool(ln.sku):
            return f"{where}.product_id", "Give a product_id or a sku (one of them)."
        key = ln.product_id or ln.sku
        product = products.get(key)
        if product is None or not product.active:
            name = "product_id" if ln.product_id else "sku"
            return f"{where}.{name}", f"No product {key!r} on the menu."
        if product.sold_by == "weight":
            if ln.weight_mg <= 0 or ln.quantity:
                return f"{where}.weight_mg", f"{product.name} is sold by weight: give weight_mg."
        elif ln.quantity <= 0 or ln.weight_mg:
            return f"{where}.quantity", f"{product.name} is sold by the unit: give quantity."
    if intake.customer.caregiver and not intake.customer.medical_number:
        return "customer.medical_number", "A caregiver order needs the caregiver's registration number."
    return None


# ---------------------------------------------------------------------------------------------- transitions
def _move(
    order: Order, to: OrderState, now: datetime, by: str, note: str = "", **changes: object
) -> Order | Refusal:
    if to not in TRANSITIONS[order.state]:
        return Refusal(code="bad_state", message=f"Order {order.id} is {order.state}; it cannot become {to}.")
    event = OrderEvent(at=now, state=to, by=by, note=note)
    return msgspec.structs.replace(
        order,
        state=to,
        updated_at=now,
        history=(*order.history, event),
        **changes,  # type: ignore[arg-type]
    )


def wanted_by_product(order: Order) -> dict[str, int]:
    out: dict[str, int] = {}
    for ln in order.lines:
        if not ln.short:
            out[ln.product_id] = out.get(ln.product_id, 0) + ln.remaining
    return out


def availability(order: Order, available: Mapping[str, int]) -> list[dict[str, object]]:
    """Per line: what was asked and whether the store has it free now (the intake answer, the queue flag)."""
    left = dict(available)
    out = []
    for ln in order.lines:
        have = left.get(ln.product_id, 0)
        ok = ln.remaining <= have
        left[ln.product_id] = max(have - ln.remaining, 0)
        out.append(
            {
                "line": ln.line_id,
                "product_id": ln.product_id,
                "requested": ln.quantity,
                "available": have,
                "ok": ok,
            }
        )
    return out


def accept(order: Order, available: Mapping[str, int], now: datetime, by: str) -> Order | Refusal:
    """Reserve every line; refused whole when any product has not enough free stock."""
    for product_id, want in wanted_by_product(order).items():
        have = available.get(product_id, 0)
        if want > have:
            name = next(ln.product_name for ln in order.lines if ln.product_id == product_id)
            return Refusal(
                code="out_of_stock", message=f"{name}: {want} wanted, only {have} free to reserve."
            )
    lines = tuple(msgspec.structs.replace(ln, reserved=ln.quantity) for ln in order.lines)
    return _move(order, "accepted", now, by, lines=lines, accepted_at=now, flags=())


def claim(order: Order, picker: str, now: datetime, by: str) -> Order | Refusal:
    """A handheld takes the order; two handhelds can never hold the same one."""
    if order.state == "picking":
        if order.picker == picker:
            return order
        return Refusal(code="claimed", message=f"Order {order.id} is being picked on {order.picker}.")
    if order.state == "ready":
        return Refusal(code="bad_state", message=f"Order {order.id} is already picked and ready.")
    return _move(order, "picking", now, by, picker=picker, picked_by=by, claimed_at=order.claimed_at or now)


def release(order: Order, picker: str, now: datetime, by: str) -> Order | Refusal:
    if order.state != "picking" or order.picker != picker:
        return Refusal(code="not_yours", message=f"Order {order.id} is not held by this handheld.")
    return _move(order, "accepted", now, by, note="released", picker="")


def _holding(order: Order, picker: str) -> Refusal | None:
    if order.state != "picking":
        return Refusal(code="bad_state", message=f"Order {order.id} is {order.state}: claim it first.")
    if order.picker != picker:
        return Refusal(code="claimed", message=f"Order {order.id} is being picked on {order.picker}.")
    return None


def pick(
    order: Order,
    picker: str,
    package: Package | None,
    product: Product | None,
    today: date,
    *,
    bound_elsewhere: int,
    now: datetime,
    by: str,
    weight: WeightReading | None = None,
) -> tuple[Order, int] | Refusal:
    """Bind one scan of a package tag to the first open line of its product: one unit, or the stable scale
    weight for a line sold by weight. Returns the order and the line picked. ``bound_elsewhere`` is what
    other orders already hold of this package."""
    if (r := _holding(order, picker)) is not None:
        return r
    if package is None:
        return Refusal(code="unknown_package", message="This package tag is not in the store's inventory.")
    line = next((ln for ln in order.lines if ln.product_id == package.product_id and not ln.complete), None)
    if line is None:
        name = product.name if product is not None else package.product_id
        if any(ln.product_id == package.product_id for ln in order.lines):
            return Refusal(code="line_complete", message=f"{name} is already picked in full for this order.")
        return Refusal(code="wrong_product", message=f"Package {package.tag} is {name}: not in this order.")
    if line.sold_by == "weight":
        if weight is None:
            return Refusal(
                code="weight_required", message=f"{line.product_name} is sold by weight: weigh it."
            )
        if not weight.stable:
            return Refusal(
                code="scale_in_motion", message="The scale is still moving; wait for a stable weight."
            )
        if not weight.certificate:
            return Refusal(
                code="scale_not_certified", message=f"Scale {weight.scale_id} has no certificate on record."
            )
        if weight.weight_mg <= 0:
            return Refusal(code="no_weight", message="The scale shows no weight.")
        take = weight.weight_mg
        ceiling = line.remaining + line.quantity * WEIGHT_TOLERANCE_PPM // 1_000_000
        if take > ceiling:
            assert product is not None
            return Refusal(
                code="over_weight",
                message=f"{format_quantity(product, take)} is more than the {format_quantity(product, line.remaining)} still wanted.",
            )
    else:
        take = 1
    held_here = sum(p.quantity for ln in order.lines for p in ln.picks if p.tag == package.tag)
    if (r := sellability(package, product, today, take + held_here)) is not None:
        return r
    if take + held_here + bound_elsewhere > package.quantity:
        return Refusal(
            code="reserved_elsewhere",
            message=f"Package {package.tag} is held for another order; pick another package.",
        )
    picked = PickedPackage(
        tag=package.tag,
        quantity=take,
        at=now,
        by=by,
        scale_id=weight.scale_id if weight else "",
        scale_certificate=weight.certificate if weight else "",
    )
    new_line = msgspec.structs.replace(line, picks=(*line.picks, picked))
    lines = tuple(new_line if ln.line_id == line.line_id else ln for ln in order.lines)
    return msgspec.structs.replace(order, lines=lines, updated_at=now), line.line_id


def mark_short(order: Order, picker: str, line_id: int, now: datetime, by: str) -> Order | Refusal:
    """The shelf has no more: the line keeps what was picked and gives the rest of its reservation back."""
    if (r := _holding(order, picker)) is not None:
        return r
    line = order.line(line_id)
    if line is None:
        return Refusal(code="line_not_found", message=f"There is no line {line_id} in order {order.id}.")
    if line.complete:
        return Refusal(code="line_complete", message=f"Line {line_id} is already picked in full.")
    new_line = msgspec.structs.replace(line, short=True, reserved=line.picked)
    lines = tuple(new_line if ln.line_id == line_id else ln for ln in order.lines)
    event = OrderEvent(at=now, state=order.state, by=by, note=f"line {line_id} short by {line.remaining}")
    return msgspec.structs.replace(order, lines=lines, updated_at=now, history=(*order.history, event))


def shortfall(line: OrderLine) -> int:
    return max(line.quantity - line.picked, 0) if line.short else 0


def substitute(
    order: Order,
    picker: str,
    line_id: int,
    product: Product,
    quantity: int,
    free: int,
    now: datetime,
    by: str,
    how: str,
) -> Order | Refusal:
    """Add a line of ``product`` in place of the short line's missing ``quantity`` and reserve it."""
    if (r := _holding(order, picker)) is not None:
        return r
    line = order.line(line_id)
    if line is None or not line.short:
        return Refusal(
            code="not_short", message=f"Line {line_id} is not short; there is nothing to substitute."
        )
    if line.substituted_by:
        return Refusal(code="already_substituted", message=f"Line {line_id} already has a substitute.")
    if quantity <= 0 or quantity > free:
        return Refusal(code="out_of_stock", message=f"{product.name}: not enough free stock to substitute.")
    new_id = order.next_line_id
    sub = OrderLine(
        line_id=new_id,
        product_id=product.id,
        product_name=product.name,
        sold_by=product.sold_by,
        quantity=quantity,
        reserved=quantity,
        substitute_for=line_id,
    )
    lines = tuple(
        msgspec.structs.replace(ln, substituted_by=new_id) if ln.line_id == line_id else ln
        for ln in order.lines
    )
    event = OrderEvent(
        at=now, state=order.state, by=by, note=f"line {line_id} substituted by {product.id} ({how})"
    )
    return msgspec.structs.replace(
        order, lines=(*lines, sub), next_line_id=new_id + 1, updated_at=now, history=(*order.history, event)
    )


def mark_ready(order: Order, picker: str, now: datetime, by: str) -> Order | Refusal:
    if (r := _holding(order, picker)) is not None:
        return r
    open_lines = [ln.line_id for ln in order.lines if not ln.complete]
    if open_lines:
        return Refusal(
            code="not_picked",
            message=f"Lines {', '.join(map(str, open_lines))} are not picked yet (pick or mark short).",
        )
    if not any(ln.picks for ln in order.lines):
        return Refusal(code="nothing_picked", message="Nothing was picked: cancel the order instead.")
    return _move(order, "ready", now, by, ready_at=now, picker="")


def cancel(order: Order, now: datetime, by: str, reason: str) -> Order | Refusal:
    return _move(order, "cancelled", now, by, note=reason, closed_at=now, picker="")


def complete(order: Order, receipt_number: int, now: datetime, by: str) -> Order | Refusal:
    if order.state != "ready":
        return Refusal(code="bad_state", message=f"Order {order.id} is {order.state}, not ready for pickup.")
    return _move(
        order,
        "completed",
        now,
        by,
        note=f"receipt {receipt_number}",
        closed_at=now,
        receipt_number=receipt_number,
    )


def expiry_due(order: Order, now: datetime, after: timedelta) -> bool:
    return order.is_open and now >= order.promised_at + after


def expire(order: Order, now: datetime) -> Order | Refusal:
    return _move(order, "expired", now, "hub", note="not collected in time", closed_at=now, picker="")


def late(order: Order, now: datetime) -> bool:
    return order.state in ("received", "accepted", "picking") and now > order.promised_at


# ---------------------------------------------------------------------------------------------- reservations
class Holding(msgspec.Struct, frozen=True, kw_only=True):
    """What one order holds of one product: ``unbound`` (reserved, not picked yet) and ``tags`` (picked)."""

    unbound: int = 0
    tags: dict[str, int] = {}


def holdings(order: Order) -> dict[str, Holding]:
    """What the order takes from stock, per product. Nothing once it is closed."""
    if order.state not in RESERVING_STATES:
        return {}
    out: dict[str, Holding] = {}
    for ln in order.lines:
        h = out.get(ln.product_id, Holding())
        tags = dict(h.tags)
        for p in ln.picks:
            tags[p.tag] = tags.get(p.tag, 0) + p.quantity
        unbound = 0 if ln.short else max(ln.reserved - ln.picked, 0)
        out[ln.product_id] = Holding(unbound=h.unbound + unbound, tags=tags)
    return {k: v for k, v in out.items() if v.unbound or v.tags}


class ProductReservations(msgspec.Struct, kw_only=True):
    """The stored index: per product, each open order's holding (read in one get by the register)."""

    orders: dict[str, Holding] = {}

    def bound(self, tag: str, except_order: str = "") -> int:
        return sum(h.tags.get(tag, 0) for oid, h in self.orders.items() if oid != except_order)

    def unbound(self, except_order: str = "") -> int:
        return sum(h.unbound for oid, h in self.orders.items() if oid != except_order)


def free_quantity(
    product: Product,
    packages: Iterable[Package],
    reservations: ProductReservations | None,
    today: date,
    *,
    except_order: str = "",
    clamp: bool = True,
) -> int:
    """On hand − reserved − unsellable (quarantine, hold, lab, expired): what the menu may offer. Unclamped,
    a negative figure means open orders hold more than the shelf still has (a package went on hold)."""
    res = reservations or ProductReservations()
    total = 0
    for pkg in packages:
        if sellability(pkg, product, today, 1) is None:
            total += max(pkg.quantity - res.bound(pkg.tag, except_order), 0)
    free = total - res.unbound(except_order)
    return max(free, 0) if clamp else free


def reservation_refusal(
    package: Package,
    product: Product,
    quantity: int,
    free: int,
    reservations: ProductReservations | None,
    *,
    except_order: str = "",
) -> Refusal | None:
    """A register (or another order) may take ``quantity`` of ``package`` only from stock no open order
    holds: not the units picked into an order, not the units an accepted order is still to pick."""
    res = reservations or ProductReservations()
    bound = res.bound(package.tag, except_order)
    if quantity > package.quantity - bound:
        return Refusal(
            code="reserved",
            message=f"Package {package.tag} is picked into an online order ({format_quantity(product, bound)} held).",
        )
    if quantity > free:
        return Refusal(
            code="reserved",
            message=f"{product.name}: the rest is reserved for online orders ({format_quantity(product, free)} free).",
        )
    return None


# ---------------------------------------------------------------------------------------------- picking aids
def pick_list(
    order: Order, products: Mapping[str, Product], shelves: Mapping[str, str]
) -> list[dict[str, object]]:
    """Lines grouped by category then shelf, the order a picker walks the back room."""
    rows = []
    for ln in order.lines:
        p = products.get(ln.product_id)
        rows.append(
            {
                "line": ln.line_id,
                "product_id": ln.product_id,
                "name": ln.product_name,
                "category": p.category if p else "",
                "shelf": shelves.get(ln.product_id, ""),
                "sold_by": ln.sold_by,
                "quantity": ln.quantity,
                "picked": ln.picked,
                "wanted": format_quantity(p, ln.quantity) if p else str(ln.quantity),
                "done": format_quantity(p, ln.picked) if p else str(ln.picked),
                "tags": [pk.tag for pk in ln.picks],
                "short": ln.short,
                "complete": ln.complete,
                "substitute_for": ln.substitute_for,
                "substituted_by": ln.substituted_by,
            }
        )
    rows.sort(key=lambda r: (str(r["category"]), str(r["shelf"]), int(r["line"])))  # type: ignore[call-overload]
    return rows


def substitution_candidates(
    missing: Product,
    quantity: int,
    catalogue: Iterable[Product],
    free: Mapping[str, int],
    fits_limits: Callable[[Product, int], bool],
    *,
    limit: int = 5,
) -> list[Product]:
    """Same category and sale unit, in stock for ``quantity``, within the customer's limits, and either
    another size of the product or :func:`similar` (price and potency within the band); the same strain
    first, then the closest in potency and price."""

    def distance(p: Product) -> tuple[int, int, str]:
        same_strain = 0 if (p.strain and p.strain == missing.strain and p.brand == missing.brand) else 1
        potency = abs(p.thc_bp - missing.thc_bp) + abs(p.thc_mg_per_unit - missing.thc_mg_per_unit) * 10
        price = abs(p.price_cents - missing.price_cents) * 10_000 // max(missing.price_cents, 1)
        return (same_strain, potency + price, p.id)

    out = [
        p
        for p in catalogue
        if p.id != missing.id
        and p.active
        and p.category == missing.category
        and p.sold_by == missing.sold_by
        and (not missing.strain_type or p.strain_type == missing.strain_type)
        and (same_product(p, missing) or similar(p, missing))
        and free.get(p.id, 0) >= quantity
        and fits_limits(p, quantity)
    ]
    out.sort(key=distance)
    return out[:limit]


def same_product(p: Product, missing: Product) -> bool:
    """Another size of the same product: the same strain of the same brand."""
    return bool(p.strain) and p.strain == missing.strain and p.brand == missing.brand


def _within(value: int, ordered: int, percent: int = SIMILAR_BAND_PERCENT) -> bool:
    return abs(value - ordered) * 100 <= ordered * percent


def similar(p: Product, missing: Product) -> bool:
    """Same category, sale unit and type (indica, sativa, hybrid), potency and price within
    ``SIMILAR_BAND_PERCENT`` of the ordered product's: what "similar" may replace without asking."""
    return (
        p.category == missing.category
        and p.sold_by == missing.sold_by
        and p.strain_type == missing.strain_type
        and _within(p.thc_bp, missing.thc_bp)
        and _within(p.thc_mg_per_unit, missing.thc_mg_per_unit)
        and _within(p.price_cents, missing.price_cents)
    )


def preferred_substitute(
    preference: SubstitutionPreference, missing: Product, candidates: list[Product]
) -> Product | None:
    """What the customer's stated preference picks without asking; None means staff confirm (or nothing)."""
    if preference == "none" or not candidates:
        return None
    if preference == "same_product_other_size":
        return next((p for p in candidates if same_product(p, missing)), None)
    return next((p for p in candidates if similar(p, missing)), None)


def family_name_matches(order_name: str, family_name: str) -> bool:
    """The ID's family name is one of the words of the name the customer gave the channel."""
    words = {w.casefold().strip(".,") for w in order_name.split()}
    return bool(family_name) and family_name.casefold().strip() in words
