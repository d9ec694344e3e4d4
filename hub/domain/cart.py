"""The cart as a state machine: a frozen Struct and pure transitions that return a new cart or a refusal.

The register actor holds the current ``Cart``, applies a transition, stores the result and pushes it; it
never edits a cart itself. Every transition returns ``Change`` (the new cart, with ``version`` + 1, and a
sentence for the budtender) or ``Refusal`` (the cart is unchanged). Stock checks count what the cart
already holds of the same package, so two lines can never oversell one package.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Literal

import msgspec

from hub.domain.catalog import Package, Product, Refusal, format_grams, format_quantity, sellability
from hub.domain.discounts import Discount, DiscountPolicy, needs_manager
from hub.domain.items import LimitAttributes

__all__ = [
    "Cart",
    "CartLine",
    "Change",
    "ManagerOverride",
    "ManualWeight",
    "Refusal",
    "WeightReading",
    "add_by_barcode",
    "add_line_discount",
    "add_cart_discount",
    "add_package",
    "cart_limit_items",
    "clear_discounts",
    "line_limit_attributes",
    "new_cart",
    "park",
    "recall",
    "redeem_points",
    "remove_line",
    "reweigh",
    "set_customer",
    "set_quantity",
]


class WeightReading(msgspec.Struct, frozen=True, kw_only=True):
    """A reading from the paired scale, as the scale actor reports it (its ``ScaleReading`` maps 1:1).
    Only a stable reading from a scale with a certificate of conformance may price a line (NIST HB 44:
    legal-for-trade weighing; record the scale and its CoC with the sale)."""

    weight_mg: int
    stable: bool
    scale_id: str
    certificate: str = ""  # NTEP certificate of conformance number
    read_at: datetime | None = None


class ManagerOverride(msgspec.Struct, frozen=True, kw_only=True):
    """Proof that a manager approved something at the register (the actor checked the PIN and wrote the
    audit entry; ``reference`` points at it)."""

    manager_id: str
    reason: str
    reference: str
    at: datetime | None = None


class ManualWeight(msgspec.Struct, frozen=True, kw_only=True):
    """A typed weight: allowed only with a manager override (DESIGN: bulk weight from a stable scale
    reading, never typed, unless a manager overrides and the override is logged)."""

    weight_mg: int
    override: ManagerOverride


class CartLine(msgspec.Struct, frozen=True, kw_only=True):
    line_id: int
    package_tag: str
    product_id: str
    product_name: str
    brand: str
    category: str
    sold_by: Literal["each", "weight"]
    tax_class: str
    is_cannabis: bool
    unit_price_cents: int  # per unit, or per gram for weighed lines
    limits: LimitAttributes  # per unit; per gram for weighed lines (as on the product)
    quantity: int = 1  # units; always 1 for a weighed line
    weight_mg: int = 0  # weighed lines only
    weight_source: Literal["", "scale", "manual"] = ""
    scale_id: str = ""
    scale_certificate: str = ""
    override: ManagerOverride | None = None  # the typed-weight override, when there is one
    discounts: tuple[Discount, ...] = ()
    added_at: datetime | None = None

    @property
    def package_quantity(self) -> int:
        """What this line takes out of its package: units, or mg for a weighed line."""
        return self.weight_mg if self.sold_by == "weight" else self.quantity


class Cart(msgspec.Struct, frozen=True, kw_only=True):
    cart_id: str
    register_id: str
    customer_id: str = ""
    lines: tuple[CartLine, ...] = ()
    cart_discounts: tuple[Discount, ...] = ()
    loyalty_points_to_redeem: int = 0
    status: Literal["open", "parked"] = "open"
    version: int = 0
    next_line_id: int = 1
    opened_at: datetime | None = None
    parked_at: datetime | None = None
    promo_codes: tuple[str, ...] = ()  # codes the customer gave (hub/domain/promotions.py ``eligible``)

    def line(self, line_id: int) -> CartLine | None:
        for line in self.lines:
            if line.line_id == line_id:
                return line
        return None

    def held_of(self, package_tag: str, except_line: int = 0) -> int:
        return sum(
            ln.package_quantity
            for ln in self.lines
            if ln.package_tag == package_tag and ln.line_id != except_line
        )


class Change(msgspec.Struct, frozen=True, kw_only=True):
    cart: Cart
    message: str
    line_id: int = 0  # the line added or changed, when there is one


def new_cart(cart_id: str, register_id: str, now: datetime, customer_id: str = "") -> Cart:
    return Cart(cart_id=cart_id, register_id=register_id, customer_id=customer_id, opened_at=now)


def _bump(cart: Cart, **changes: object) -> Cart:
    return msgspec.structs.replace(cart, version=cart.version + 1, **changes)


def _parked(cart: Cart) -> Refusal | None:
    if cart.status == "parked":
        return Refusal(code="cart_parked", message="This cart is parked; recall it first.")
    return None


def _no_line(line_id: int) -> Refusal:
    return Refusal(code="line_not_found", message=f"There is no line {line_id} in the cart.")


def _check_weight(weight: WeightReading | ManualWeight | None) -> Refusal | None:
    if weight is None:
        return Refusal(
            code="weight_required", message="This product is sold by weight: place it on the scale."
        )
    if isinstance(weight, WeightReading):
        if not weight.stable:
            return Refusal(
                code="scale_in_motion", message="The scale is still moving; wait for a stable weight."
            )
        if not weight.certificate:
            return Refusal(
                code="scale_not_certified",
                message=f"Scale {weight.scale_id} has no certificate of conformance on record; it cannot price a sale.",
            )
    elif not (weight.override.reference and weight.override.manager_id and weight.override.reason):
        return Refusal(code="override_required", message="A typed weight needs a manager override.")
    if weight.weight_mg <= 0:
        return Refusal(code="no_weight", message="The scale shows no weight.")
    return None


def _weighed_fields(weight: WeightReading | ManualWeight) -> dict[str, object]:
    if isinstance(weight, WeightReading):
        return {
            "weight_mg": weight.weight_mg,
            "weight_source": "scale",
            "scale_id": weight.scale_id,
            "scale_certificate": weight.certificate,
            "override": None,
        }
    return {
        "weight_mg": weight.weight_mg,
        "weight_source": "manual",
        "scale_id": "",
        "scale_certificate": "",
        "override": weight.override,
    }


def add_package(
    cart: Cart,
    package: Package | None,
    product: Product | None,
    today: date,
    *,
    quantity: int = 1,
    weight: WeightReading | ManualWeight | None = None,
    now: datetime | None = None,
) -> Change | Refusal:
    """Add a line for a scanned package tag. Unit products take ``quantity``; weight products take a
    stable scale ``weight`` (or a ``ManualWeight`` with a manager override). Scanning a unit package that
    is already in the cart adds to its line."""
    if (r := _parked(cart)) is not None:
        return r
    if product is not None and product.sold_by == "weight":
        if (r := _check_weight(weight)) is not None:
            # Unknown / unsellable packages are reported before "weigh it" (a budtender should not weigh
            # a package the store cannot sell).
            return sellability(package, product, today, 1) or r
        assert weight is not None
        need = weight.weight_mg
    else:
        if quantity < 1:
            return Refusal(code="bad_quantity", message="Quantity must be at least 1.")
        need = quantity
    held = cart.held_of(package.tag) if package is not None else 0
    if (r := sellability(package, product, today, held + need)) is not None:
        if r.code == "short" and held and package is not None and product is not None:
            return Refusal(
                code="short",
                message=(
                    f"Package {package.tag} has {format_quantity(product, package.quantity)}; "
                    f"{format_quantity(product, held)} already in this cart."
                ),
            )
        return r
    assert package is not None and product is not None
    if product.sold_by == "each":
        for line in cart.lines:
            if line.package_tag == package.tag:
                new_line = msgspec.structs.replace(line, quantity=line.quantity + quantity)
                lines = tuple(new_line if ln.line_id == line.line_id else ln for ln in cart.lines)
                return Change(
                    cart=_bump(cart, lines=lines),
                    message=f"{product.name}: now {new_line.quantity}.",
                    line_id=line.line_id,
                )
    fields: dict[str, object] = {"quantity": quantity}
    if product.sold_by == "weight":
        assert weight is not None
        fields = {"quantity": 1, **_weighed_fields(weight)}
    line = CartLine(
        line_id=cart.next_line_id,
        package_tag=package.tag,
        product_id=product.id,
        product_name=product.name,
        brand=product.brand,
        category=product.category,
        sold_by=product.sold_by,
        tax_class=product.tax_class,
        is_cannabis=product.is_cannabis,
        unit_price_cents=product.price_cents,
        limits=product.limits,
        added_at=now,
        **fields,  # type: ignore[arg-type]
    )
    what = f"{format_grams(line.weight_mg)} g" if line.sold_by == "weight" else f"{line.quantity} ×"
    return Change(
        cart=_bump(cart, lines=(*cart.lines, line), next_line_id=cart.next_line_id + 1),
        message=f"Added {what} {product.name} from package {package.tag}.",
        line_id=line.line_id,
    )


def _fifo_key(p: Package) -> tuple[int, datetime, str]:
    # Oldest received first; packages with no receipt date last; the tag breaks ties deterministically.
    if p.received_at is None:
        return (1, datetime.max, p.tag)
    at = p.received_at
    if at.tzinfo is not None:  # compare instants, whatever offset each was recorded with
        at = at.astimezone(UTC).replace(tzinfo=None)
    return (0, at, p.tag)


def add_by_barcode(
    cart: Cart,
    product: Product | None,
    packages: Iterable[Package],
    today: date,
    *,
    quantity: int = 1,
    weight: WeightReading | ManualWeight | None = None,
    now: datetime | None = None,
) -> Change | Refusal:
    """Add by a product barcode: pick the sellable package of ``product`` received first (FIFO) that
    still has enough after what the cart already holds, and say which one was picked."""
    if (r := _parked(cart)) is not None:
        return r
    if product is None:
        return Refusal(code="unknown_product", message="This barcode is not in the catalogue.")
    need = quantity
    if product.sold_by == "weight":
        if (r := _check_weight(weight)) is not None:
            return r
        assert weight is not None
        need = weight.weight_mg
    candidates = sorted((p for p in packages if p.product_id == product.id), key=_fifo_key)
    first_refusal: Refusal | None = None
    for package in candidates:
        r = sellability(package, product, today, cart.held_of(package.tag) + need)
        if r is None:
            result = add_package(cart, package, product, today, quantity=quantity, weight=weight, now=now)
            if isinstance(result, Change):
                result = msgspec.structs.replace(result, message=result.message + " (oldest package first)")
            return result
        first_refusal = first_refusal or r
    if first_refusal is None:
        return Refusal(
            code="no_package", message=f"No package of {product.name} is in the store's inventory."
        )
    return Refusal(
        code="no_sellable_package",
        message=f"No package of {product.name} can be sold now (first one: {first_refusal.message})",
    )


def set_quantity(
    cart: Cart, line_id: int, quantity: int, package: Package | None, product: Product | None, today: date
) -> Change | Refusal:
    """Set the units of a unit-priced line (0 removes it). Re-checks the package (it may have gone on hold
    since it was scanned) and its stock."""
    if (r := _parked(cart)) is not None:
        return r
    line = cart.line(line_id)
    if line is None:
        return _no_line(line_id)
    if line.sold_by == "weight":
        return Refusal(
            code="weighed_line", message="A weighed line takes its weight from the scale, not a quantity."
        )
    if quantity < 0:
        return Refusal(code="bad_quantity", message="Quantity cannot be negative.")
    if quantity == 0:
        return remove_line(cart, line_id)
    if package is None or package.tag != line.package_tag:
        return Refusal(
            code="unknown_package", message=f"Package {line.package_tag} is no longer in inventory."
        )
    held = cart.held_of(package.tag, except_line=line_id)
    if (r := sellability(package, product, today, held + quantity)) is not None:
        return r
    new_line = msgspec.structs.replace(line, quantity=quantity)
    lines = tuple(new_line if ln.line_id == line_id else ln for ln in cart.lines)
    return Change(cart=_bump(cart, lines=lines), message=f"{line.product_name}: {quantity}.", line_id=line_id)


def reweigh(
    cart: Cart,
    line_id: int,
    weight: WeightReading | ManualWeight | None,
    package: Package | None,
    product: Product | None,
    today: date,
) -> Change | Refusal:
    """Replace the weight of a weighed line with a new stable reading (or an overridden typed weight)."""
    if (r := _parked(cart)) is not None:
        return r
    line = cart.line(line_id)
    if line is None:
        return _no_line(line_id)
    if line.sold_by != "weight":
        return Refusal(code="unit_line", message="This line is sold by the unit; set its quantity instead.")
    if (r := _check_weight(weight)) is not None:
        return r
    assert weight is not None
    if package is None or package.tag != line.package_tag:
        return Refusal(
            code="unknown_package", message=f"Package {line.package_tag} is no longer in inventory."
        )
    held = cart.held_of(package.tag, except_line=line_id)
    if (r := sellability(package, product, today, held + weight.weight_mg)) is not None:
        return r
    new_line = msgspec.structs.replace(line, **_weighed_fields(weight))  # type: ignore[arg-type]
    lines = tuple(new_line if ln.line_id == line_id else ln for ln in cart.lines)
    return Change(
        cart=_bump(cart, lines=lines),
        message=f"{line.product_name}: {format_grams(weight.weight_mg)} g.",
        line_id=line_id,
    )


def remove_line(cart: Cart, line_id: int) -> Change | Refusal:
    if (r := _parked(cart)) is not None:
        return r
    line = cart.line(line_id)
    if line is None:
        return _no_line(line_id)
    lines = tuple(ln for ln in cart.lines if ln.line_id != line_id)
    return Change(cart=_bump(cart, lines=lines), message=f"Removed {line.product_name}.", line_id=line_id)


def set_customer(cart: Cart, customer_id: str) -> Change | Refusal:
    if (r := _parked(cart)) is not None:
        return r
    if cart.customer_id and cart.customer_id != customer_id and cart.lines:
        # The allotment already checked was the other customer's; start over rather than carry it.
        return Refusal(
            code="customer_change",
            message="This cart belongs to another customer; park it or clear it first.",
        )
    points = cart.loyalty_points_to_redeem if customer_id == cart.customer_id else 0
    return Change(
        cart=_bump(cart, customer_id=customer_id, loyalty_points_to_redeem=points),
        message="Customer checked in." if customer_id else "Customer removed.",
    )


def add_line_discount(
    cart: Cart, line_id: int, discount: Discount, *, role: str, policy: DiscountPolicy
) -> Change | Refusal:
    """Add a manual discount to a line. Beyond the role's threshold it needs ``discount.override_ref``."""
    if (r := _parked(cart)) is not None:
        return r
    line = cart.line(line_id)
    if line is None:
        return _no_line(line_id)
    if (r := _check_discount(discount)) is not None:
        return r
    if needs_manager(discount, line_base_cents(line), role, policy):
        return Refusal(
            code="override_required", message="This discount is beyond your limit: a manager must approve it."
        )
    new_line = msgspec.structs.replace(line, discounts=(*line.discounts, discount))
    lines = tuple(new_line if ln.line_id == line_id else ln for ln in cart.lines)
    return Change(cart=_bump(cart, lines=lines), message=f"Discount on {line.product_name}.", line_id=line_id)


def add_cart_discount(
    cart: Cart, discount: Discount, *, role: str, policy: DiscountPolicy
) -> Change | Refusal:
    if (r := _parked(cart)) is not None:
        return r
    if (r := _check_discount(discount)) is not None:
        return r
    subtotal = sum(line_base_cents(ln) for ln in cart.lines)
    if needs_manager(discount, subtotal, role, policy):
        return Refusal(
            code="override_required", message="This discount is beyond your limit: a manager must approve it."
        )
    return Change(
        cart=_bump(cart, cart_discounts=(*cart.cart_discounts, discount)), message="Cart discount added."
    )


def clear_discounts(cart: Cart) -> Change | Refusal:
    if (r := _parked(cart)) is not None:
        return r
    lines = tuple(msgspec.structs.replace(ln, discounts=()) for ln in cart.lines)
    return Change(cart=_bump(cart, lines=lines, cart_discounts=()), message="Discounts removed.")


def _check_discount(discount: Discount) -> Refusal | None:
    if not discount.reason.strip():
        return Refusal(code="reason_required", message="A discount needs a reason.")
    if discount.value <= 0 or (discount.kind == "percent" and discount.value > 10_000):
        return Refusal(code="bad_discount", message="A discount must be more than 0 and at most 100%.")
    return None


def redeem_points(cart: Cart, points: int, available: int) -> Change | Refusal:
    if (r := _parked(cart)) is not None:
        return r
    if not cart.customer_id:
        return Refusal(code="no_customer", message="Check in a customer to redeem loyalty points.")
    if points < 0 or points > available:
        return Refusal(code="not_enough_points", message=f"The customer has {available} points.")
    return Change(cart=_bump(cart, loyalty_points_to_redeem=points), message=f"Redeeming {points} points.")


def park(cart: Cart, now: datetime) -> Change | Refusal:
    if cart.status == "parked":
        return Refusal(code="cart_parked", message="This cart is already parked.")
    if not cart.lines:
        return Refusal(code="cart_empty", message="An empty cart has nothing to park.")
    return Change(cart=_bump(cart, status="parked", parked_at=now), message="Cart parked.")


def recall(cart: Cart) -> Change | Refusal:
    """Recall a parked cart. Its lines are re-checked at the next change and inside the commit."""
    if cart.status != "parked":
        return Refusal(code="not_parked", message="This cart is not parked.")
    return Change(cart=_bump(cart, status="open", parked_at=None), message="Cart recalled.")


def line_limit_attributes(line: CartLine) -> tuple[LimitAttributes, int]:
    """What the limits engine counts for one line: (attributes of one item, how many items).

    A weighed line is one item of the weight sold (items.py); its other attributes scale from the
    per-gram ones, rounded up so a limit is never under-counted by rounding.
    """
    if line.sold_by != "weight":
        return (line.limits, line.quantity)
    per_g = line.limits
    w = line.weight_mg

    def scale(v: int) -> int:
        return -(-v * w // 1000)  # ceiling in integers

    return (
        LimitAttributes(
            category=per_g.category,
            net_weight_mg=w,
            concentrate_mg=scale(per_g.concentrate_mg),
            thc_mg=scale(per_g.thc_mg),
            volume_ul=scale(per_g.volume_ul),
            units=1,
        ),
        1,
    )


def cart_limit_items(cart: Cart) -> list[tuple[LimitAttributes, int]]:
    """The input of the limits engine (``hub.domain.limits``) for the whole cart; accessories excluded."""
    return [line_limit_attributes(ln) for ln in cart.lines if ln.is_cannabis]


def line_base_cents(line: CartLine) -> int:
    """What a line costs before any promotion, discount or tax."""
    if line.sold_by == "weight":
        # price is per gram, weight in mg
        return _per_gram(line.unit_price_cents * line.weight_mg)
    return line.unit_price_cents * line.quantity


def _per_gram(cents_times_mg: int) -> int:
    """``cents_times_mg / 1000`` rounded half away from zero, as ``tax.round_half_up`` does, in integers
    (a Fraction costs microseconds, and every pricing of a weighed line asks)."""
    whole, rest = divmod(abs(cents_times_mg), 1000)
    whole += rest >= 500
    return whole if cents_times_mg >= 0 else -whole
