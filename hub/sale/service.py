"""The sale at the register: the register actor applies these handlers one at a time.

Every decision comes from the domain core (identity, limits, cart, pricing, tax, tender, receipt); this
module only fetches what the core needs from the store, calls it, commits through the writer and publishes
the register's new state. The commit of a sale is one transaction that re-checks inventory and allotment.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import lmdb
import msgspec
import trio

from hub import audit, auth
from hub.commands import Request, handles
from hub.domain import aamva, identity
from hub.domain import cart as carts
from hub.domain.cart import Cart, ManagerOverride, WeightReading
from hub.domain.cart import ManualWeight as ManualWeightValue
from hub.domain.catalog import CatalogIndex, Customer, Package, Product, Refusal, format_quantity, sellability
from hub.domain.drawer import DrawerEvent, DrawerSession, change_refusal, may_open, open_session
from hub.domain.drawer import record as drawer_record
from hub.domain.limits.engine import (
    LimitCustomer,
    LimitDecision,
    LimitItem,
    evaluate,
    history_usage,
    history_window_start,
    state_remaining_from_ounces,
)
from hub.domain.limits.rules import Jurisdiction
from hub.domain.outbox import OutboxEntry
from hub.domain.pricing import Discount, DiscountPolicy, LoyaltyPolicy, PricedCart, needs_manager, price_cart
from hub.domain.promotions import eligible
from hub.domain.receipt import (
    AllotmentLeft,
    Receipt,
    SaleRecord,
    StoreIdentity,
    VoidRecord,
    build_receipt,
    render_receipt_html,
    sale_overrides,
    void_refusal,
)
from hub.domain.scan_classify import classify
from hub.domain.state_payloads import StateSale, StateSaleLine, StateVoid
from hub.domain.tax import TaxTable
from hub.domain.tender import NEEDS_TERMINAL, Settlement, Tender, cashless_atm_withdrawal, cents, settle
from hub.errors import BadRequest, Conflict, Forbidden, HubError, NotFound, StorageError
from hub.orders import stock as order_stock
from hub.sale import bank, card, reversals
from hub.sale import inventory as inv
from hub.sale import protocol as p
from hub.store.env import decode, encode, next_seq, put, tget
from hub.store.keys import joined, text, u64
from hub.store.writer import as_storage_error

if TYPE_CHECKING:
    from actors.register import RegisterActor
    from hub.app import Hub

log = logging.getLogger("hub.sale")
RECEIPT_SEQ = b"receipt_seq"


class Refused(HubError):
    """The core said no; the message is the core's sentence."""

    code = "refused"


def refuse(r: Refusal | identity.Refusal) -> Refused:
    return Refused(r.message, code=r.code)


class CheckedIn(msgspec.Struct, kw_only=True):
    """The customer at the counter, as the register needs them (no name unless they consented)."""

    customer_id: str
    id_hash: str
    customer_type: str  # adult | medical | caregiver
    customer_class: str | None
    age: int
    resident: bool
    id_jurisdiction: str
    birth_date: date
    id_expiry: date
    label: str
    allowed: bool
    reasons: list[str] = []
    warnings: list[str] = []
    registration_number: str = ""
    registration_expiry: date | None = None
    loyalty_points: int = 0
    manual_reason: str = ""
    checked_in_at: datetime | None = None
    # the state registry's own remaining allotment, per bucket in the bucket's unit (Metrc patient status)
    state_remaining: dict[str, int] | None = None
    registry_status: str = ""
    family_name: str = ""  # from the ID, only to match an online order's customer at pickup


class ScaleState(msgspec.Struct, kw_only=True):
    device: str
    weight_mg: int = 0
    stable: bool = False
    state: str = "down"
    up: bool = False
    certificate: str = ""
    at: datetime | None = None


class RegisterSale(msgspec.Struct, kw_only=True):
    """What a register is in the middle of; persisted on every change so a reconnect or restart finds it."""

    register_id: str
    cart: Cart | None = None
    customer: CheckedIn | None = None
    parked: list[Cart] = []
    notice: dict[str, str] | None = None
    last_receipt_number: int = 0
    order_id: str = ""  # the online order this cart picks up (issue 14)

    def checkpoint(self) -> RegisterSale:
        """A copy to go back to if the command now applied fails (carts and customers are replaced,
        never changed in place; the parked list is)."""
        return msgspec.structs.replace(self, parked=list(self.parked))

    def restore(self, saved: RegisterSale) -> None:
        """Back to ``saved`` after a failed command: the screen never shows what the store did not keep.
        The notice stays (it says why the command failed)."""
        self.cart, self.customer, self.parked = saved.cart, saved.customer, saved.parked
        self.last_receipt_number = saved.last_receipt_number


class SaleSettings(msgspec.Struct, kw_only=True):
    tax_table: TaxTable
    discount_policy: DiscountPolicy = msgspec.field(default_factory=DiscountPolicy)
    loyalty: LoyaltyPolicy = msgspec.field(default_factory=LoyaltyPolicy)
    promotions: tuple[Any, ...] = ()


class SaleContext:
    """Per-hub state of the sale feature (not per register)."""

    def __init__(self, hub: Hub, jurisdiction: Jurisdiction, settings: SaleSettings, id_key: bytes) -> None:
        self.hub = hub
        self.jurisdiction = jurisdiction
        self.settings = settings
        self.id_key = id_key
        self.index = CatalogIndex()
        self.scales: dict[str, ScaleState] = {}
        # bumped by every sale and void: a customer's purchase history may have changed
        self.ledger_generation = 0
        self.limits_cache: dict[str, tuple[Any, LimitDecision]] = {}
        self.usage_cache: dict[str, tuple[Any, dict[str, int]]] = {}
        self.receipt_views: dict[int, dict[str, Any]] = {}
        self.price_cache: dict[str, tuple[Any, Cart, PricedCart]] = {}
        self.terminals: dict[str, Any] = {}  # device id -> payment-terminal handle (see actors)
        # the live catalogue and loyalty (hub/customers): which promotions and loyalty policy price a cart
        # of this customer now; None prices with ``settings`` as loaded
        self.pricing_for: Callable[[Cart, CheckedIn | None, datetime], tuple[Any, LoyaltyPolicy]] | None = (
            None
        )
        # booked inside the sale's transaction: loyalty ledger, CRM event (hub/customers)
        self.in_sale_txn: list[Callable[..., None]] = []
        # a void gives the sale's points back (hub/customers)
        self.in_void_txn: list[Callable[..., None]] = []
        # told of every licence scanned at a register (hub/customers: enrolment prefills from it)
        self.licence_seen: list[Callable[[str, aamva.DriverLicence], None]] = []
        self.printers: dict[str, Any] = {}
        self.store_identity = StoreIdentity(
            name=hub.config.store.name,
            licence=hub.config.store.licence,
            address=hub.config.store.address,
            timezone=hub.config.store.time_zone,
        )

    @property
    def zone(self) -> Any:
        return self.hub.config.zone

    def today(self, now: datetime | None = None) -> date:
        return (now or datetime.now(UTC)).astimezone(self.zone).date()


def ctx_of(hub: Hub) -> SaleContext:
    ctx = hub.services.sale
    if ctx is None:
        raise LookupError("This hub runs no sale.")
    return ctx


def sale_of(actor: RegisterActor) -> RegisterSale:
    s = actor.extensions.get("sale")
    if s is None:
        stored = actor.hub.store.get("carts", text(actor.id), RegisterSale)
        s = actor.extensions["sale"] = stored or RegisterSale(register_id=actor.id)
    return s  # type: ignore[no-any-return]


def _actor(req: Request) -> RegisterActor:
    return req.hub.registers[req.register_id]


async def _save(req: Request, sale: RegisterSale, *, reply: Any = None) -> Any:
    """Persist the register's sale state with this command's reply, behind the answer (a cart being
    built; the sale itself is committed before it is acknowledged)."""
    store = req.hub.store
    try:
        blob = encode(sale)
    except (OverflowError, msgspec.EncodeError):
        # a number beyond what the store keeps (2^64): refused, and the register rolls the change back
        raise BadRequest("A number in this change is out of range; nothing was changed.") from None

    def fn(txn: lmdb.Transaction) -> None:
        txn.put(text(sale.register_id), blob, db=store.db("carts"))

    result = await req.commit_behind(fn, reply, label="cart")
    _actor(req).publish()
    return result


def _notice(sale: RegisterSale, level: str, text_: str) -> None:
    sale.notice = {"level": level, "text": text_}


def _cart(sale: RegisterSale, register_id: str) -> Cart:
    if sale.cart is None:
        now = datetime.now(UTC)
        sale.cart = carts.new_cart(
            f"{register_id}-{secrets.token_hex(4)}",
            register_id,
            now,
            sale.customer.customer_id if sale.customer else "",
        )
    return sale.cart


def _need_customer(sale: RegisterSale) -> CheckedIn:
    c = sale.customer
    if c is None:
        raise Refused("Check in the customer first: scan their ID.", code="no_customer")
    if not c.allowed:
        raise Refused("This customer may not buy: " + "; ".join(c.reasons), code="customer_refused")
    return c


# ---------------------------------------------------------------------------------------------- limits
def limit_items(cart: Cart | None) -> list[LimitItem]:
    if cart is None:
        return []
    return [LimitItem(attributes=a, quantity=q) for a, q in carts.cart_limit_items(cart)]


def check_limits(
    ctx: SaleContext,
    txn: lmdb.Transaction,
    customer: CheckedIn,
    cart: Cart | None,
    now: datetime,
    *,
    fresh: bool = False,
) -> LimitDecision:
    """The limits for this customer and cart. What their past purchases use is read from the ledger once
    per customer, store-wide sale and minute (a stale figure only ever counts more); ``fresh`` reads it
    again inside the caller's transaction, as the sale commit does."""
    j = ctx.jurisdiction
    cls = customer.customer_class or "adult"
    who = LimitCustomer(customer_class=cls, age=customer.age)
    key = (
        customer.customer_id,
        cls,
        customer.age,
        ctx.ledger_generation,
        now.replace(second=0, microsecond=0),
    )
    hit = None if fresh else ctx.usage_cache.get(customer.customer_id)
    if hit is not None and hit[0] == key:
        usage = hit[1]
    else:
        since = history_window_start(j, cls, now)
        usage = history_usage(j, who, inv.history(txn, ctx.hub.store, customer.customer_id, since), now)
        if len(ctx.usage_cache) > 1024:
            ctx.usage_cache.clear()
        ctx.usage_cache[customer.customer_id] = (key, usage)
    return evaluate(j, who, (), limit_items(cart), now, state_remaining=customer.state_remaining, usage=usage)


def current_limits(ctx: SaleContext, customer: CheckedIn, cart: Cart | None) -> LimitDecision:
    """The limits decision for this customer and cart, computed once per change: the guard that refuses an
    item and the gauges on the screen share it. Any sale or void in the store (another register may sell
    to the same customer) and the passing minute make it stale."""
    now = datetime.now(UTC)
    key = (
        customer.customer_id,
        customer.customer_class,
        customer.checked_in_at,
        customer.state_remaining and tuple(sorted(customer.state_remaining.items())),
        cart.cart_id if cart else "",
        cart.version if cart else -1,
        ctx.ledger_generation,
        now.replace(second=0, microsecond=0),
    )
    hit = ctx.limits_cache.get(customer.customer_id)
    if hit is not None and hit[0] == key:
        return hit[1]
    with ctx.hub.store.read() as txn:
        decision = check_limits(ctx, txn, customer, cart, now)
    if len(ctx.limits_cache) > 256:
        ctx.limits_cache.clear()
    ctx.limits_cache[customer.customer_id] = (key, decision)
    return decision


def allotment_view(ctx: SaleContext, customer: CheckedIn | None, cart: Cart | None) -> dict[str, Any]:
    """Gauges: per bucket the limit, what history and the cart use, and what is left."""
    if customer is None or not customer.allowed or customer.customer_class is None:
        return {"allotment": [], "limit_problems": []}
    j = ctx.jurisdiction
    with_cart = current_limits(ctx, customer, cart)
    from hub.domain.limits.engine import format_amount

    rules = [r for r in j.rules if customer.customer_class in r.classes]
    gauges = []
    for bucket_id, left in sorted(with_cart.remaining.items()):
        b = j.buckets[bucket_id]
        caps = [r.limit for r in rules if r.bucket == bucket_id]
        if not caps:
            continue
        limit = min(caps)
        used = max(limit - left, 0)
        unit = {"mg": "g", "ul": "ml"}.get(b.unit, b.unit)
        gauges.append(
            {
                "bucket": bucket_id,
                "label": b.label,
                "limit": limit,
                "used": used,
                "remaining": left,
                "unit": unit,
                "limit_text": format_amount(limit * b.scale, b, round_up=False),
                "remaining_text": format_amount(left * b.scale, b, round_up=False),
            }
        )
    return {"allotment": gauges, "limit_problems": [v.message for v in with_cart.violations]}


# ---------------------------------------------------------------------------------------------- check-in
def _check_in_licence(
    ctx: SaleContext,
    lic: aamva.DriverLicence,
    customer_type: str,
    *,
    registration: identity.MedicalRegistration | None = None,
    manual_reason: str = "",
    registry: identity.RegistryAnswer | None = None,
) -> CheckedIn:
    now = datetime.now(UTC)
    decision = identity.check_in(
        lic,
        jurisdiction=ctx.jurisdiction,
        customer_type=customer_type,
        now=now,
        registration=registration,
        registry=registry,
    )
    hashed = inv.id_hash(ctx.id_key, lic.jurisdiction, lic.document_number)
    known = inv.customer_by_hash(ctx.hub.store, hashed)
    cls_label = (
        ctx.jurisdiction.class_label(decision.customer_class) if decision.customer_class else customer_type
    )
    label = f"{cls_label}, {decision.age}"
    if known is not None and known.display_name:
        label = f"{known.display_name} ({label})"
    return CheckedIn(
        customer_id=known.id if known is not None else hashed[:24],
        id_hash=hashed,
        customer_type=customer_type,
        customer_class=decision.customer_class,
        age=decision.age,
        resident=decision.resident,
        id_jurisdiction=lic.jurisdiction,
        birth_date=lic.date_of_birth,
        id_expiry=lic.expiry,
        label=label,
        allowed=decision.allowed,
        reasons=[r.message for r in decision.refusals],
        warnings=list(decision.warnings),
        registration_number=registration.number if registration else "",
        registration_expiry=registration.expires if registration else None,
        loyalty_points=known.loyalty_points if known is not None else 0,
        manual_reason=manual_reason,
        checked_in_at=now,
        family_name=lic.family_name,
    )


async def _apply_check_in(
    req: Request, sale: RegisterSale, checked: CheckedIn, how: str, kind: str = "id"
) -> dict[str, Any]:
    sale.customer = checked
    if sale.cart is not None:
        sale.cart = msgspec.structs.replace(sale.cart, customer_id=checked.customer_id)
    if checked.allowed:
        _notice(sale, "info", f"Checked in: {checked.label}.")
    else:
        _notice(sale, "error", "Refused: " + "; ".join(checked.reasons))
    store = req.hub.store
    blob = encode(sale)
    detail = {
        "how": how,
        "allowed": checked.allowed,
        "class": checked.customer_class or "",
        "reasons": checked.reasons,
        "manual_reason": checked.manual_reason,
    }
    result = {"kind": kind, "allowed": checked.allowed, "reasons": checked.reasons, "label": checked.label}

    def fn(txn: lmdb.Transaction) -> Any:
        txn.put(text(sale.register_id), blob, db=store.db("carts"))
        # who was checked in is kept as the keyed hash only (no name, no ID number)
        audit.append(
            txn,
            store,
            "check_in" if checked.allowed else "check_in_refused",
            staff=req.staff_id,
            register=req.register_id,
            detail={**detail, "customer": checked.customer_id},
        )
        return result

    out = await req.commit(fn, label="check_in")
    _actor(req).publish()
    return out  # type: ignore[no-any-return]


def _typed_licence(number: str, birth: date, expiry: date, jurisdiction: str) -> aamva.DriverLicence:
    """What the check-in core needs of an ID that was not scanned (typed by staff, or already checked)."""
    return aamva.DriverLicence(
        document_type="ID",
        document_number=number,
        family_name="",
        given_name="",
        date_of_birth=birth,
        expiry=expiry,
        jurisdiction=jurisdiction,
        iin="",
        aamva_version=0,
        country="USA",
    )


@handles(p.CheckInManual)
async def check_in_manual(req: Request, msg: p.CheckInManual) -> Any:
    ctx, sale = ctx_of(req.hub), sale_of(_actor(req))
    lic = _typed_licence(msg.id_number, msg.birth_date, msg.id_expiry, msg.id_jurisdiction)
    checked = _check_in_licence(ctx, lic, "adult", manual_reason=msg.reason)
    return await _apply_check_in(req, sale, checked, "manual")


@handles(p.SetCustomerType)
async def set_customer_type(req: Request, msg: p.SetCustomerType) -> Any:
    ctx, sale = ctx_of(req.hub), sale_of(_actor(req))
    c = sale.customer
    if c is None:
        raise Refused("Scan the customer's ID first.", code="no_customer")
    lic = _typed_licence("-", c.birth_date, c.id_expiry, c.id_jurisdiction)
    reg = None
    if msg.customer_type != "adult":
        reg = identity.MedicalRegistration(
            number=msg.registration_number,
            jurisdiction=ctx.jurisdiction.code,
            expires=msg.registration_expiry,
        )
    registry, state_remaining = None, None
    # only where the state keeps a registry (Metrc patient status, BioTrack card lookup)
    if reg is not None and reg.number and ctx.jurisdiction.check_in.registry == "state-registry":
        registry, state_remaining = await registry_lookup(req.hub, ctx, reg.number)
    checked = _check_in_licence(
        ctx, lic, msg.customer_type, registration=reg, manual_reason=c.manual_reason, registry=registry
    )
    checked = msgspec.structs.replace(
        checked,
        state_remaining=state_remaining if checked.allowed else None,
        registry_status=registry.status if registry else "",
        customer_id=c.customer_id,
        id_hash=c.id_hash,
        loyalty_points=c.loyalty_points,
        # a consenting customer was greeted by name at the ID scan: keep the name, change the class
        label=f"{c.label.split(' (')[0]} ({checked.label})" if " (" in c.label else checked.label,
    )
    return await _apply_check_in(req, sale, checked, f"type:{msg.customer_type}")


REGISTRY_TIMEOUT = 3.0  # the counter never waits longer than this on the state's registry


async def registry_lookup(
    hub: Hub, ctx: SaleContext, number: str
) -> tuple[identity.RegistryAnswer | None, dict[str, int] | None]:
    """Ask the state's registry about a medical registration (Metrc patient status, cached a minute by
    the client). Unreachable is an answer too: the jurisdiction's policy decides what that allows."""
    from drivers.state_errors import StateError

    ch = hub.services.state_channel
    reader = getattr(ch, "reader", None)
    if reader is None or not hasattr(reader, "patient_status"):
        return None, None
    try:
        with trio.fail_after(REGISTRY_TIMEOUT):
            st = await reader.patient_status(number)
    except (trio.TooSlowError, StateError, OSError):
        return identity.RegistryAnswer(status="unreachable"), None
    if st is None:
        return identity.RegistryAnswer(status="not-found"), None
    if not st.active:
        return identity.RegistryAnswer(status="inactive"), None
    return identity.RegistryAnswer(status="active"), state_remaining_from_ounces(
        ctx.jurisdiction, st.flower_ounces_available, st.thc_ounces_available
    )


@handles(p.EndCustomer)
async def end_customer(req: Request, msg: p.EndCustomer) -> Any:
    sale = sale_of(_actor(req))
    sale.customer = None
    sale.cart = None
    sale.order_id = ""  # a recalled online order stays ready for its pickup
    _notice(sale, "info", "Ready for the next customer.")
    return await _save(req, sale, reply={})


# ---------------------------------------------------------------------------------------------- scanning
# hub/sale/queue.py registers `scan` in front of this one: a second ID at a busy register joins the queue
@handles(p.Scan)
async def scan(req: Request, msg: p.Scan) -> Any:
    t0 = trio.current_time()
    ctx, sale = ctx_of(req.hub), sale_of(_actor(req))
    sc = classify(msg.data)
    # A serial scanner's licence is judged as bytes by the parser, so a refusal never blames a keyboard
    # wedge that was not there (classify's wedge reason is for typed input).
    serial_licence = sc.kind == "aamva" and msg.source == "serial"
    if not sc.valid and not serial_licence:
        _notice(sale, "error", sc.reason)
        _actor(req).publish()
        raise Refused(sc.reason, code="bad_scan")
    try:
        if sc.kind == "aamva":
            try:
                lic = aamva.parse_licence(sc.data.encode() if serial_licence else sc.data)
            except aamva.AamvaError as exc:
                raise Refused(str(exc), code="bad_id") from None
            for seen in ctx.licence_seen:
                seen(req.register_id, lic)
            checked = _check_in_licence(ctx, lic, "adult")
            return await _apply_check_in(req, sale, checked, f"scan:{msg.source}")
        if sc.kind in ("metrc_package", "biotrack_barcode"):
            return await _add_package(req, sale, sc.data, 1, kind="package")
        if sc.kind == "metrc_retail_id":
            # Retail ID is meant to be scanned at checkout: decoded offline to its package (hub/domain/retail_id.py).
            return await _add_package(req, sale, sc.package_label, 1, kind="package")
        if sc.kind in ("upc_a", "ean_13", "ean_8", "upc_e"):
            product = inv.product_by_barcode(req.hub.store, sc.data)
            if product is None:
                raise Refused(f"No product with barcode {sc.data} in the catalogue.", code="unknown_barcode")
            return await _add_product(req, sale, product, 1, kind="product")
        raise Refused(
            f"That scan ({sc.kind}) is not a package tag, product barcode or ID.", code="unknown_scan"
        )
    finally:
        req.hub.metrics.scan_seconds.observe(trio.current_time() - t0)


# ---------------------------------------------------------------------------------------------- the cart
def paired_device(hub: Hub, register_id: str, kind: str) -> str:
    """The device of ``kind`` serving a register: from store.toml, else one paired at start (the demo's)."""
    reg = hub.config.register(register_id)
    configured = getattr(reg, kind, "") if reg is not None else ""
    if configured:
        return str(configured)
    devices = hub.services.devices
    if devices is not None:
        for device_id, r in devices.paired.items():
            if r == register_id and devices.kinds.get(device_id) == kind:
                return str(device_id)
    return f"demo-{kind.replace('_', '-')}-{register_id}"


def _weight_for(ctx: SaleContext, req: Request) -> WeightReading | None:
    device = paired_device(req.hub, req.register_id, "scale")
    s = ctx.scales.get(device)
    if s is None or not s.up:
        return None
    return WeightReading(
        weight_mg=s.weight_mg, stable=s.stable, scale_id=s.device, certificate=s.certificate, read_at=s.at
    )


def _apply(sale: RegisterSale, result: carts.Change | Refusal) -> carts.Change:
    if isinstance(result, Refusal):
        _notice(sale, "error", result.message)
        raise refuse(result)
    sale.cart = result.cart
    _notice(sale, "info", result.message)
    return result


def _limit_guard(ctx: SaleContext, sale: RegisterSale, before: Cart | None) -> None:
    """Allotment left is recomputed on every change; an item that would break a limit is refused."""
    customer = sale.customer
    if customer is None or customer.customer_class is None:
        return
    decision = current_limits(ctx, customer, sale.cart)
    if not decision.allowed:
        message = "; ".join(v.message for v in decision.violations)
        sale.cart = before
        _notice(sale, "error", f"Over the limit: {message}")
        raise Refused(f"Over the limit: {message}", code="over_limit")


async def _add_package(
    req: Request,
    sale: RegisterSale,
    tag: str,
    quantity: int,
    weight: WeightReading | ManualWeightValue | None = None,
    kind: str = "package",
) -> dict[str, Any]:
    ctx = ctx_of(req.hub)
    _need_customer(sale)
    pkg = inv.package(req.hub.store, tag)
    product = inv.product(req.hub.store, pkg.product_id) if pkg else None
    if product is not None and product.sold_by == "weight" and weight is None:
        weight = _weight_for(ctx, req)
    now = datetime.now(UTC)
    return await _change_cart(
        req,
        sale,
        kind,
        lambda cart: carts.add_package(
            cart, pkg, product, ctx.today(), quantity=quantity, weight=weight, now=now
        ),
    )


async def _change_cart(
    req: Request, sale: RegisterSale, kind: str, transition: Callable[[Cart], carts.Change | Refusal]
) -> dict[str, Any]:
    """Apply one cart transition of the core; refuse it whole if it breaks a limit; save and publish."""
    ctx = ctx_of(req.hub)
    before = sale.cart
    try:
        change = _apply(sale, transition(_cart(sale, req.register_id)))
        # units an online order holds are not for this cart (issue 14)
        held = order_stock.cart_refusal(req.hub.store, change.cart, change.line_id, ctx.today(), except_order=sale.order_id)
        if held is not None:
            _notice(sale, "error", held.message)
            raise refuse(held)
    except Refused:
        sale.cart = before
        _actor(req).publish()
        raise
    _limit_guard_publish(req, ctx, sale, before)
    return await _save(req, sale, reply={"kind": kind, "line": change.line_id, "message": change.message})


def _limit_guard_publish(req: Request, ctx: SaleContext, sale: RegisterSale, before: Cart | None) -> None:
    try:
        _limit_guard(ctx, sale, before)
    except Refused:
        _actor(req).publish()
        raise


async def _add_product(
    req: Request, sale: RegisterSale, product: Product, quantity: int, kind: str = "product"
) -> dict[str, Any]:
    ctx = ctx_of(req.hub)
    _need_customer(sale)
    packages = inv.packages_of(req.hub.store, product.id)
    weight = _weight_for(ctx, req) if product.sold_by == "weight" else None
    now = datetime.now(UTC)
    return await _change_cart(
        req,
        sale,
        kind,
        lambda cart: carts.add_by_barcode(
            cart, product, packages, ctx.today(), quantity=quantity, weight=weight, now=now
        ),
    )


@handles(p.AddPackage)
async def add_package(req: Request, msg: p.AddPackage) -> Any:
    return await _add_package(req, sale_of(_actor(req)), msg.tag.strip(), msg.quantity)


@handles(p.AddProduct)
async def add_product(req: Request, msg: p.AddProduct) -> Any:
    product = inv.product(req.hub.store, msg.product_id)
    if product is None:
        raise NotFound(f"No product {msg.product_id!r} in the catalogue.")
    return await _add_product(req, sale_of(_actor(req)), product, msg.quantity)


@handles(p.WeighLine)
async def weigh_line(req: Request, msg: p.WeighLine) -> Any:
    ctx, sale = ctx_of(req.hub), sale_of(_actor(req))
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


@handles(p.ManualWeight)
async def manual_weight(req: Request, msg: p.ManualWeight) -> Any:
    sale = sale_of(_actor(req))
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
    ctx = ctx_of(req.hub)
    _need_customer(sale)
    cart = _cart(sale, req.register_id)
    line = cart.line(line_id)
    assert line is not None
    pkg = inv.package(req.hub.store, line.package_tag)
    product = inv.product(req.hub.store, line.product_id)
    return await _change_cart(
        req,
        sale,
        "reweigh",
        lambda c: carts.reweigh(c, line_id, weight, pkg, product, ctx.today()),
    )


@handles(p.SetQuantity)
async def set_quantity(req: Request, msg: p.SetQuantity) -> Any:
    ctx, sale = ctx_of(req.hub), sale_of(_actor(req))
    cart = _cart(sale, req.register_id)
    line = cart.line(msg.line)
    pkg = inv.package(req.hub.store, line.package_tag) if line else None
    product = inv.product(req.hub.store, line.product_id) if line else None
    before = sale.cart
    _apply(sale, carts.set_quantity(cart, msg.line, msg.quantity, pkg, product, ctx.today()))
    _limit_guard_publish(req, ctx, sale, before)
    return await _save(req, sale, reply={})


@handles(p.RemoveLine)
async def remove_line(req: Request, msg: p.RemoveLine) -> Any:
    sale = sale_of(_actor(req))
    _apply(sale, carts.remove_line(_cart(sale, req.register_id), msg.line))
    return await _save(req, sale, reply={})


@handles(p.ApplyDiscount)
async def apply_discount(req: Request, msg: p.ApplyDiscount) -> Any:
    ctx, sale = ctx_of(req.hub), sale_of(_actor(req))
    cart = _cart(sale, req.register_id)
    value = msg.value * 100 if msg.kind == "percent" else msg.value  # percent -> basis points
    d = Discount(kind=msg.kind, value=value, reason=msg.reason, applied_by=req.staff_id)
    policy = ctx.settings.discount_policy
    priced = _price(ctx, cart, sale)
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
    return await _save(req, sale, reply={})


@handles(p.ClearDiscounts)
async def clear_discounts(req: Request, msg: p.ClearDiscounts) -> Any:
    sale = sale_of(_actor(req))
    _apply(sale, carts.clear_discounts(_cart(sale, req.register_id)))
    return await _save(req, sale, reply={})


@handles(p.RedeemPoints)
async def redeem_points(req: Request, msg: p.RedeemPoints) -> Any:
    sale = sale_of(_actor(req))
    c = _need_customer(sale)
    _apply(sale, carts.redeem_points(_cart(sale, req.register_id), msg.points, c.loyalty_points))
    return await _save(req, sale, reply={})


@handles(p.ParkCart)
async def park_cart(req: Request, msg: p.ParkCart) -> Any:
    sale = sale_of(_actor(req))
    change = _apply(sale, carts.park(_cart(sale, req.register_id), datetime.now(UTC)))
    sale.parked.append(change.cart)
    sale.cart = None
    sale.customer = None
    sale.order_id = ""
    return await _save(req, sale, reply={"cart_id": change.cart.cart_id})


@handles(p.RecallCart)
async def recall_cart(req: Request, msg: p.RecallCart) -> Any:
    sale = sale_of(_actor(req))
    found = next((c for c in sale.parked if c.cart_id == msg.cart_id), None)
    if found is None:
        raise NotFound("That parked cart is not on this register.")
    if sale.cart is not None and sale.cart.lines:
        raise Refused("Park or finish the current cart first.", code="cart_busy")
    change = _apply(sale, carts.recall(found))
    sale.parked.remove(found)
    sale.cart = change.cart
    sale.customer = None
    _notice(sale, "info", "Cart recalled: scan the customer's ID again before paying.")
    return await _save(req, sale, reply={})


@handles(p.Search, idempotent=False)
async def search(req: Request, msg: p.Search) -> Any:
    ctx = ctx_of(req.hub)
    out = []
    today = ctx.today()
    for product in ctx.index.search(msg.query, limit=msg.limit):
        pkgs = inv.packages_of(req.hub.store, product.id)
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
                "thc_text": _potency(product.thc_bp, product.thc_mg_per_unit),
                "cbd_text": _potency(product.cbd_bp, product.cbd_mg_per_unit),
                "lab_testing": "passed" if "passed" in labs else (sorted(labs)[0] if labs else "none"),
                "coa_ref": product.coa_ref,
            }
        )
    return {"products": out}


def _potency(bp: int, mg: int) -> str:
    if mg:
        return f"{mg} mg"
    return f"{bp // 100}.{bp % 100:02d}%" if bp else ""


# ---------------------------------------------------------------------------------------------- approvals
async def approve(
    req: Request, a: p.ManagerApproval, what: str, *, detail: dict[str, Any] | None = None
) -> ManagerOverride:
    """Check a manager's ID and PIN at the register (the shared lockout); audit the override; return its
    reference."""
    hub = req.hub
    now = datetime.now(UTC)
    try:
        member = await auth.authenticate(
            hub, a.manager, a.pin, register_id=req.register_id, purpose="approval", acting=req.staff_id
        )
        if auth.ROLE_RANK[member.role] < auth.ROLE_RANK["manager"]:
            raise Forbidden(
                "The manager ID or PIN is not right, or that person is not a manager.",
                code="approval_refused",
            )
    except HubError:
        await hub.writer.write(
            lambda txn: audit.append(
                txn,
                hub.store,
                "override_refused",
                staff=req.staff_id,
                register=req.register_id,
                detail={"what": what, "manager": a.manager},
            )
        )
        raise
    entry = await hub.writer.write(
        lambda txn: audit.append(
            txn,
            hub.store,
            "override",
            staff=req.staff_id,
            register=req.register_id,
            detail={"what": what, "manager": member.id, "reason": a.reason, **(detail or {})},
        )
    )
    return ManagerOverride(manager_id=member.id, reason=a.reason, reference=f"audit:{entry.seq}", at=now)


# ---------------------------------------------------------------------------------------------- drawers
def record_drawer_event(
    txn: lmdb.Transaction, store: Any, session_id: str, event: DrawerEvent
) -> DrawerSession:
    """Record a cash movement on a drawer session inside the caller's transaction (the core decides)."""
    session = tget(txn, store, "drawers", text(session_id), DrawerSession)
    if session is None:
        raise Conflict(f"The drawer session {session_id} has no record.")
    updated = drawer_record(session, event)
    if isinstance(updated, Refusal):
        raise refuse(updated)
    put(txn, store, "drawers", text(session_id), updated)
    return updated


def open_drawer_id(txn: lmdb.Transaction, store: Any, register_id: str) -> str:
    raw = txn.get(b"open_drawer:" + text(register_id), db=store.db("kv"))
    return bytes(raw).decode() if raw is not None else ""


async def staff_by_pin(req: Request, staff_id: str, pin: str, who: str) -> auth.StaffMember:
    """A second person confirms with their own PIN (witness, incoming cashier): the shared lockout, every
    attempt audited; a locked account is refused even with the right PIN."""
    purpose: auth.PinPurpose = "incoming" if who == "incoming" else "witness"
    return await auth.authenticate(
        req.hub, staff_id, pin, register_id=req.register_id, purpose=purpose, acting=req.staff_id
    )


async def open_drawer_session(
    req: Request, register_id: str, counted: dict[str, int], witness: auth.StaffMember
) -> dict[str, Any]:
    """Open a register's drawer with a counted float and a witness (the core checks one open drawer per
    register and a second person); audited; the reply is stored with it."""
    hub = req.hub
    now = datetime.now(UTC)
    session_id = f"D-{register_id}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(2)}"

    def fn(txn: lmdb.Transaction) -> Any:
        store = hub.store
        s = open_session(
            session_id,
            register_id,
            counted,
            counted_by=req.staff_id,
            witness=witness.id,
            at=now,
            open_session_on_register=open_drawer_id(txn, store, register_id),
        )
        if isinstance(s, Refusal):
            raise refuse(s)
        put(txn, store, "drawers", text(session_id), s)
        txn.put(b"open_drawer:" + text(register_id), text(session_id), db=store.db("kv"))
        audit.append(
            txn,
            store,
            "drawer_opened",
            staff=req.staff_id,
            register=register_id,
            detail={"session": session_id, "float_cents": s.opening.count.total_cents, "witness": witness.id},
        )
        return {
            "session_id": session_id,
            "register_id": register_id,
            "float_cents": s.opening.count.total_cents,
        }

    result: dict[str, Any] = await req.commit(fn)
    actor = hub.registers.get(register_id)
    if actor is not None:
        actor.publish()
    return result


@handles(p.OpenDrawer)
async def open_drawer(req: Request, msg: p.OpenDrawer) -> Any:
    if msg.witness is None or msg.witness_pin is None:
        raise BadRequest("Opening a drawer needs a witness who enters their PIN.", field="witness")
    member = await staff_by_pin(req, msg.witness, msg.witness_pin, "witness")
    if (r := may_open(req.role, member.role)) is not None:
        raise Forbidden(r.message, code="forbidden")
    return await open_drawer_session(req, req.register_id, msg.counted, member)


# ---------------------------------------------------------------------------------------------- paying
def _price(ctx: SaleContext, cart: Cart, sale: RegisterSale) -> PricedCart:
    """The priced cart; the same cart version in the same minute prices the same (promotion windows are
    minute-grained), so a snapshot reuses the price computed for the change."""
    local_now = datetime.now(UTC).astimezone(ctx.zone)
    points = sale.customer.loyalty_points if sale.customer else 0
    key = (cart.version, cart.status, points, local_now.replace(second=0, microsecond=0))
    hit = ctx.price_cache.get(cart.cart_id)
    if hit is not None and hit[0] == key and hit[1] is cart:
        return hit[2]
    priced = _price_now(ctx, cart, local_now, points, sale.customer)
    if len(ctx.price_cache) > 256:
        ctx.price_cache.clear()
    ctx.price_cache[cart.cart_id] = (key, cart, priced)
    return priced


def _price_now(
    ctx: SaleContext, cart: Cart, local_now: datetime, points: int, customer: CheckedIn | None = None
) -> PricedCart:
    # a promotion that asks for a code applies only when the customer gave it
    promotions, loyalty = eligible(ctx.settings.promotions, codes=cart.promo_codes), ctx.settings.loyalty
    if ctx.pricing_for is not None:
        promotions, loyalty = ctx.pricing_for(cart, customer, local_now)
    return price_cart(
        cart,
        ctx.settings.tax_table,
        local_now=local_now,
        promotions=promotions,
        loyalty=loyalty,
        available_points=points,
    )


def _state_sale(ctx: SaleContext, receipt: Receipt, customer: CheckedIn, register_id: str) -> StateSale:
    lines = []
    for ln in receipt.lines:
        excise = sum(t.amount_cents for t in ln.taxes if t.code == "excise")
        other = sum(t.amount_cents for t in ln.taxes) - excise
        weighed = ln.sold_by == "weight"
        lines.append(
            StateSaleLine(
                package_label=ln.package_tag,
                unit_of_measure="Grams" if weighed else "Each",
                quantity_mg=ln.weight_mg if weighed else 0,
                units=0 if weighed else ln.quantity,
                total_price_cents=ln.pretax_cents,
                excise_tax_cents=excise,
                other_tax_cents=other,
            )
        )
    medical = customer.customer_type != "adult"
    return StateSale(
        external_receipt_number=f"{ctx.hub.config.store.licence}-{receipt.receipt_number}",
        sold_at=receipt.sold_at,
        store_time_zone=ctx.hub.config.store.time_zone,
        lines=tuple(lines),
        customer_type="Patient" if medical else "Consumer",
        patient_license=customer.registration_number or None if medical else None,
        identification_method="Driver's licence",
        terminal_id=register_id,
    )


def add_outbox(
    txn: lmdb.Transaction,
    store: Any,
    *,
    kind: str,
    licence: str,
    key: str,
    payload: bytes,
    labels: tuple[str, ...],
    now: datetime,
) -> OutboxEntry:
    seq = next_seq(txn, store, "outbox")
    entry = OutboxEntry(
        seq=seq,
        kind=kind,  # type: ignore[arg-type]
        licence=licence,
        idempotency_key=key,
        payload=payload,
        package_labels=labels,
        created_at=now,
        next_attempt_at=now,
    )
    put(txn, store, "outbox", u64(seq), entry)
    return entry


def commit_sale(
    txn: lmdb.Transaction,
    ctx: SaleContext,
    *,
    register_id: str,
    staff: str,
    cashier: str,
    cart: Cart,
    customer: CheckedIn,
    priced: PricedCart,
    settlement: Settlement,
    now: datetime,
    order_id: str = "",
) -> Receipt:
    """The sale as one transaction: re-check stock and allotment, then write everything or nothing."""
    store = ctx.hub.store
    today = ctx.today(now)
    # 1. every package still sellable for what the whole cart takes from it
    taking: dict[str, int] = {}
    for line in cart.lines:
        taking[line.package_tag] = taking.get(line.package_tag, 0) + line.package_quantity
    packages: dict[str, Package] = {}
    for tag, qty in taking.items():
        pkg = inv.package_in_txn(txn, store, tag)
        product = inv.product_in_txn(txn, store, pkg.product_id) if pkg else None
        r = sellability(pkg, product, today, qty)
        if r is not None:
            raise Conflict(r.message, code=r.code)
        assert pkg is not None
        packages[tag] = pkg
    held = order_stock.taking_refusal_in_txn(txn, store, packages, taking, today, except_order=order_id)
    if held is not None:
        raise Conflict(held.message, code=held.code)
    # 2. the allotment, against the ledger as it is now (another register may have sold to them)
    decision = check_limits(ctx, txn, customer, cart, now, fresh=True)
    if not decision.allowed:
        raise Refused(
            "Over the limit: " + "; ".join(v.message for v in decision.violations), code="over_limit"
        )
    # 3. cash needs an open drawer on this register
    drawer_id = open_drawer_id(txn, store, register_id)
    cash = settlement.cash_received_cents
    if (cash or settlement.change_cents) and not drawer_id:
        raise Refused(
            "No open drawer on this register: a manager opens one with a counted float.", code="no_drawer"
        )
    if settlement.change_cents:
        drawer = tget(txn, store, "drawers", text(drawer_id), DrawerSession) if drawer_id else None
        if (r := change_refusal(drawer, settlement.change_cents)) is not None:
            raise refuse(r)
    # 4. receipt number: sequential per store
    raw = txn.get(RECEIPT_SEQ, db=store.db("meta"))
    number = (int.from_bytes(raw, "big") if raw is not None else 0) + 1
    txn.put(RECEIPT_SEQ, number.to_bytes(8, "big"), db=store.db("meta"))
    allot = [
        AllotmentLeft(bucket=ctx.jurisdiction.buckets[b].label, left=_left_text(ctx, b, left))
        for b, left in sorted(decision.remaining.items())
    ]
    receipt = build_receipt(
        store=ctx.store_identity,
        receipt_number=number,
        cart=cart,
        priced=priced,
        settlement=settlement,
        cashier=cashier,
        sold_at=now,
        customer_type=customer.customer_type,
        allotment_left=allot,
        loyalty_balance=None,
    )
    record = SaleRecord(
        receipt=receipt,
        customer_id=customer.customer_id,
        drawer_session_id=drawer_id,
        overrides=sale_overrides(cart),
    )
    put(txn, store, "sales", u64(number), record)
    txn.put(joined(today.isoformat().encode(), u64(number)), b"", db=store.db("sales_by_day"))
    # 5. inventory
    for tag, qty in taking.items():
        pkg = packages[tag]
        left = pkg.quantity - qty
        inv.put_package(
            txn,
            store,
            msgspec.structs.replace(pkg, quantity=left, status="finished" if left == 0 else pkg.status),
        )
    # 6. the customer's ledger (limits windows)
    entry = inv.LedgerEntry(receipt_number=number, at=now, items=limit_items(cart))
    txn.put(inv.ledger_key(customer.customer_id, now, number), encode(entry), db=store.db("ledger"))
    # 7. the state system, through the outbox
    state_sale = _state_sale(ctx, receipt, customer, register_id)
    add_outbox(
        txn,
        store,
        kind="sale",
        licence=ctx.hub.config.store.licence,
        key=state_sale.external_receipt_number,
        payload=encode(state_sale),
        labels=tuple(sorted(taking)),
        now=now,
    )
    # 8. the drawer
    if drawer_id and (cash or settlement.change_cents):
        if settlement.drawer_delta_cents < 0:
            # change beyond the cash received: a cashless-ATM withdrawal's rounding, paid from the drawer
            # (refused when the drawer does not hold it)
            record_drawer_event(
                txn,
                store,
                drawer_id,
                DrawerEvent(
                    kind="atm_change",
                    amount_cents=-settlement.drawer_delta_cents,
                    at=now,
                    by=staff,
                    receipt_number=number,
                ),
            )
        if settlement.drawer_delta_cents > 0:
            record_drawer_event(
                txn,
                store,
                drawer_id,
                DrawerEvent(
                    kind="cash_sale",
                    amount_cents=settlement.drawer_delta_cents,
                    at=now,
                    by=staff,
                    receipt_number=number,
                ),
            )
    # 9. loyalty: only for customers the store keeps a record of (they consented); with the customers
    # feature installed it books the loyalty ledger and the CRM event in this transaction instead
    for hook in ctx.in_sale_txn:
        hook(txn, ctx, receipt=receipt, customer=customer, priced=priced, staff=staff, now=now)
    known = tget(txn, store, "customers", text(customer.customer_id), Customer)
    if ctx.in_sale_txn:
        known = None
    if known is not None and (priced.loyalty_points_redeemed or priced.loyalty_points_earned):
        balance = known.loyalty_points - priced.loyalty_points_redeemed + priced.loyalty_points_earned
        if balance < 0:
            raise Refused("The customer no longer has the points being redeemed.", code="not_enough_points")
        inv.put_customer(txn, store, msgspec.structs.replace(known, loyalty_points=balance))
    # 10. the audit trail
    audit.append(
        txn,
        store,
        "sale",
        staff=staff,
        register=register_id,
        detail={
            "receipt": number,
            "total_cents": receipt.total_cents,
            "tenders": {t.kind: t.amount_cents for t in settlement.tenders},
            "customer": customer.customer_id,
            "overrides": len(record.overrides),
        },
    )
    return receipt


def _left_text(ctx: SaleContext, bucket_id: str, left: int) -> str:
    from hub.domain.limits.engine import format_amount

    b = ctx.jurisdiction.buckets[bucket_id]
    return f"{format_amount(left * b.scale, b, round_up=False)} left"


@handles(p.Pay, timeout_s=card.PAY_WAIT_S)
async def pay(req: Request, msg: p.Pay) -> Any:
    hub = req.hub
    ctx, actor = ctx_of(hub), _actor(req)
    sale = sale_of(actor)
    customer = _need_customer(sale)
    cart = sale.cart
    if cart is None or not cart.lines:
        raise Refused("The cart is empty.", code="cart_empty")
    priced = _price(ctx, cart, sale)
    terminal = ctx.terminals.get(paired_device(hub, req.register_id, "payment_terminal"))
    tenders = [_tender(terminal, t.kind, t.amount_cents) for t in msg.tenders]
    settlement = settle(priced.total_cents, tenders)
    if isinstance(settlement, Refusal):
        raise refuse(settlement)
    if settlement.change_cents and any(t.kind in NEEDS_TERMINAL or t.kind == "pay_by_bank" for t in tenders):
        _check_change_in_drawer(req, settlement.change_cents)
    now = datetime.now(UTC)
    staff, cashier = req.staff_id, (req.session.name if req.session else req.staff_id)
    cart_for_commit = msgspec.structs.replace(cart, customer_id=customer.customer_id)
    cleared = RegisterSale(register_id=sale.register_id, parked=sale.parked)
    # cards and bank apps are charged before the commit; from the first approval on, ANY failure or
    # cancellation gives the money back (shielded), so no customer is charged without a sale
    charged: list[Tender] = []
    try:
        for i, t in enumerate(settlement.tenders):
            if t.kind in NEEDS_TERMINAL:
                tenders[i] = await card.take_card(actor, terminal, t, card.attempt_reference(cart.cart_id, i))
                charged.append(tenders[i])
            elif t.kind == "pay_by_bank":
                reference = card.attempt_reference(cart.cart_id, i)
                tenders[i] = await bank.take_bank(req, actor, t, reference, msg.tenders[i].phone)
                charged.append(tenders[i])
        if charged:
            settlement = msgspec.structs.replace(settlement, tenders=tuple(tenders))

        def fn(txn: lmdb.Transaction) -> Any:
            receipt = commit_sale(
                txn,
                ctx,
                register_id=req.register_id,
                staff=staff,
                cashier=cashier,
                cart=cart_for_commit,
                customer=customer,
                priced=priced,
                settlement=settlement,
                now=now,
                order_id=sale.order_id,
            )
            if sale.order_id:  # pickup of an online order: it completes with its sale, in this transaction
                from hub.orders.pickup import complete_in_txn

                complete_in_txn(
                    txn,
                    hub,
                    sale.order_id,
                    customer,
                    receipt.receipt_number,
                    by=staff,
                    register=req.register_id,
                    now=now,
                )
            cleared.last_receipt_number = receipt.receipt_number
            cleared.notice = {
                "level": "info",
                "text": f"Sale {receipt.receipt_number} done. Change due {cents(receipt.change_cents)}.",
            }
            txn.put(text(sale.register_id), encode(cleared), db=hub.store.db("carts"))
            return {
                "receipt_number": receipt.receipt_number,
                "total_cents": receipt.total_cents,
                "change_cents": receipt.change_cents,
            }

        result = await req.commit(fn, label="sale")
    except BaseException as exc:
        kept = [t for t in charged if not await _give_back(req, terminal, t)]
        if kept and isinstance(exc, Exception):
            # the customer's money is still taken: say so plainly, never "given back"
            refs = ", ".join(t.reference for t in kept)
            log.error("sale not saved (%s) and its payment NOT given back: %s", exc, refs)
            message = (
                "The sale could not be saved and its payment was NOT given back: "
                f"void it at the terminal (reference {refs}). The hub keeps trying too."
            )
            _notice(sale, "error", message)
            actor.publish()
            raise HubError(message, code="payment_not_given_back") from exc
        if isinstance(exc, HubError):
            _notice(sale, "error", exc.message)
            actor.publish()
        elif charged and isinstance(exc, Exception):
            # answered, not crashed: a crashed command is redelivered, which would charge the card again
            log.error("sale not saved after its payment was taken (%s); the payment was given back", exc)
            message = "The sale could not be saved, so its payment was given back. Try again."
            _notice(sale, "error", message)
            actor.publish()
            raise HubError(message, code="sale_not_saved") from exc
        raise
    actor.extensions["sale"] = cleared
    card.clear(actor)
    ctx.ledger_generation += 1
    hub.metrics.sales.labels(req.register_id).inc()
    actor.publish()
    for hook in hub.services.after_sale:
        try:  # the sale is committed: a printer or a flag watcher failing must not turn it into an error
            hook(hub, req.register_id, result["receipt_number"], settlement)
        except Exception:
            log.exception("after-sale hook %r failed for receipt %s", hook, result["receipt_number"])
    return result


class VoidIntent(msgspec.Struct, kw_only=True):
    """A void whose payments are being given back (``kv`` ``void-intent:<receipt>``), cleared by the
    void's own commit: one left behind names a sale whose card may be voided while the sale is active."""

    receipt_number: int
    references: tuple[str, ...]
    started_at: datetime
    staff: str
    register: str


def void_intent_key(receipt_number: int) -> bytes:
    return b"void-intent:" + u64(receipt_number)


async def _record_void_intent(req: Request, record: SaleRecord, now: datetime) -> None:
    ctx, store = ctx_of(req.hub), req.hub.store
    if (refusal := void_refusal(record, ctx.today(record.receipt.sold_at), ctx.today(now))) is not None:
        raise refuse(refusal)
    refs = tuple(t.reference for t in record.receipt.tenders if t.reference)
    if not refs:
        return  # nothing to give back outside the void's own commit
    intent = VoidIntent(
        receipt_number=record.receipt.receipt_number,
        references=refs,
        started_at=now,
        staff=req.staff_id,
        register=req.register_id,
    )

    def fn(txn: lmdb.Transaction) -> None:
        put(txn, store, "kv", void_intent_key(intent.receipt_number), intent)
        audit.append(
            txn,
            store,
            "void_started",
            staff=req.staff_id,
            register=req.register_id,
            detail={"receipt": intent.receipt_number, "references": list(refs)},
        )

    await req.hub.writer.write(fn, label="void-intent")


async def _void_payments(
    req: Request, record: SaleRecord, now: datetime, back: list[Tender]
) -> tuple[Tender, ...]:
    """Before a sale is voided, its card and bank payments are taken back at the terminal or the provider
    (``back``: those given back so far); if one of them refuses, the void is refused."""
    ctx = ctx_of(req.hub)
    if (refusal := void_refusal(record, ctx.today(record.receipt.sold_at), ctx.today(now))) is not None:
        raise refuse(refusal)
    for t in record.receipt.tenders:
        if t.kind in NEEDS_TERMINAL and t.reference:
            terminal = ctx.terminals.get(t.terminal_id)
            if terminal is None or not await terminal.void(t.reference, t.charged_cents):
                raise Refused(
                    "The card terminal did not void this sale's card payment: nothing was changed. "
                    "Try again when the terminal is online, or return the items instead.",
                    code="card_void_failed",
                )
            back.append(t)
        elif t.kind == "pay_by_bank" and t.reference:
            if not await bank.give_back(req, t):
                raise Refused(
                    "The pay-by-bank provider did not reverse this sale's payment: nothing was changed.",
                    code="bank_void_failed",
                )
            back.append(t)
    return tuple(back)


def _tender(terminal: Any, kind: str, amount_cents: int) -> Tender:
    """A tender as the register asked for it; a cashless-ATM tender on a terminal set up for it becomes the
    withdrawal the terminal will run (rounded up to its increment, with its fee)."""
    tender = Tender(kind=kind, amount_cents=amount_cents)  # type: ignore[arg-type]
    atm = getattr(terminal, "cashless_atm", None)
    if kind == "cashless_atm" and atm is not None and amount_cents > 0:
        w = cashless_atm_withdrawal(amount_cents, atm.increment_cents, atm.fee_cents)
        tender = msgspec.structs.replace(tender, amount_cents=w.withdrawal_cents, fee_cents=w.fee_cents)
    return tender


def _check_change_in_drawer(req: Request, change_cents: int) -> None:
    """The drawer must be able to give the change (drawer.change_refusal, checked again in the commit);
    asked before any card or bank app is charged, so a refusal never costs the customer a charge and a
    void (a cashless-ATM withdrawal's rounding comes back as change)."""
    store = req.hub.store
    with store.read() as txn:
        drawer_id = open_drawer_id(txn, store, req.register_id)
        session = tget(txn, store, "drawers", text(drawer_id), DrawerSession) if drawer_id else None
    if (r := change_refusal(session, change_cents)) is not None:
        raise refuse(r)


async def _give_back(req: Request, terminal: Any, tender: Tender) -> bool:
    """Give an approved payment back after its sale failed; False when it is still taken. A card void the
    terminal did not confirm becomes a pending reversal (audited, counted, retried until confirmed)."""
    if tender.kind == "pay_by_bank":
        return bool(await bank.give_back(req, tender))
    if terminal is None:
        ok = False
    else:
        ok = await card.give_back(terminal, tender)
    if not ok:
        await reversals.record(
            req.hub,
            reference=tender.reference,
            device_id=tender.terminal_id or getattr(terminal, "device_id", ""),
            amount_cents=tender.charged_cents,
            reason="the sale was not saved and the terminal did not confirm the void",
            register=req.register_id,
            staff=req.staff_id,
        )
    return ok


# ---------------------------------------------------------------------------------------------- void
@handles(p.VoidSale)
async def void_sale(req: Request, msg: p.VoidSale) -> Any:
    hub = req.hub
    ctx = ctx_of(hub)
    store = hub.store
    record = store.get("sales", u64(msg.receipt_number), SaleRecord)
    if record is None:
        raise NotFound(f"There is no sale {msg.receipt_number}.")
    override = await approve(req, msg.approval, "void", detail={"receipt": msg.receipt_number})
    now = datetime.now(UTC)
    # 1. the intent first, durably: if the payments are given back and the final commit then fails, the
    # store still says this sale's void is under way (and a retry re-checks each card void at the terminal,
    # which answers "voided already" as done: drivers/spin.py's void is idempotent)
    await _record_void_intent(req, record, now)
    # 2. the money back at the terminal / the provider (refused: nothing changed, the intent withdrawn)
    returned: list[Tender] = []
    try:
        given_back = await _void_payments(req, record, now, returned)
    except Refused:
        if returned:  # a split payment partly given back: the intent stays, the retry re-checks each one
            raise
        await hub.writer.write(
            lambda txn: txn.delete(void_intent_key(msg.receipt_number), db=store.db("kv")),
            label="void-intent",
        )
        raise

    # 3. the void itself, the intent cleared in the same commit
    def fn(txn: lmdb.Transaction) -> Any:
        rec = tget(txn, store, "sales", u64(msg.receipt_number), SaleRecord)
        assert rec is not None
        txn.delete(void_intent_key(msg.receipt_number), db=store.db("kv"))
        r = rec.receipt
        if (refusal := void_refusal(rec, ctx.today(r.sold_at), ctx.today(now))) is not None:
            raise refuse(refusal)
        for ln in r.lines:
            pkg = inv.package_in_txn(txn, store, ln.package_tag)
            if pkg is not None:
                back = ln.weight_mg if ln.sold_by == "weight" else ln.quantity
                status = "active" if pkg.status == "finished" else pkg.status
                inv.put_package(
                    txn, store, msgspec.structs.replace(pkg, quantity=pkg.quantity + back, status=status)
                )
        lk = inv.ledger_key(rec.customer_id, r.sold_at, r.receipt_number)
        raw = txn.get(lk, db=store.db("ledger"))
        if raw is not None:
            entry = decode(raw, inv.LedgerEntry)
            entry.voided = True  # the allotment is given back
            txn.put(lk, encode(entry), db=store.db("ledger"))
        cash = sum(t.amount_cents for t in r.tenders if t.kind == "cash") - r.change_cents
        refund = ((Tender(kind="cash", amount_cents=cash),) if cash > 0 else ()) + given_back
        void = VoidRecord(
            receipt_number=r.receipt_number,
            register_id=req.register_id,
            voided_at=now,
            manager_id=override.manager_id,
            reason=override.reason,
            refund_tenders=refund,
            drawer_session_id=open_drawer_id(txn, store, req.register_id),
        )
        put(txn, store, "sales", u64(r.receipt_number), msgspec.structs.replace(rec, voided=True))
        put(txn, store, "kv", b"void:" + u64(r.receipt_number), void)
        if cash > 0 and void.drawer_session_id:
            record_drawer_event(
                txn,
                store,
                void.drawer_session_id,
                DrawerEvent(
                    kind="cash_refund",
                    amount_cents=cash,
                    at=now,
                    by=req.staff_id,
                    reason=f"void: {override.reason}",
                    manager_id=override.manager_id,
                    override_ref=override.reference,
                    receipt_number=r.receipt_number,
                ),
            )
        if cash < 0 and void.drawer_session_id:
            # a cashless-ATM sale: the withdrawal is voided at the terminal and the customer hands back
            # the change the drawer paid out
            record_drawer_event(
                txn,
                store,
                void.drawer_session_id,
                DrawerEvent(
                    kind="atm_change_returned",
                    amount_cents=-cash,
                    at=now,
                    by=req.staff_id,
                    reason=f"void: {override.reason}",
                    receipt_number=r.receipt_number,
                ),
            )
        ext = f"{hub.config.store.licence}-{r.receipt_number}"
        sv = StateVoid(
            external_receipt_number=ext,
            voided_at=now,
            package_labels=tuple(sorted({ln.package_tag for ln in r.lines})),
        )
        add_outbox(
            txn,
            store,
            kind="void",
            licence=hub.config.store.licence,
            key=f"void-{ext}",
            payload=encode(sv),
            labels=sv.package_labels,
            now=now,
        )
        for hook in ctx.in_void_txn:
            hook(txn, ctx, receipt=r, customer_id=rec.customer_id, staff=req.staff_id, now=now)
        audit.append(
            txn,
            store,
            "void",
            staff=req.staff_id,
            register=req.register_id,
            detail={
                "receipt": r.receipt_number,
                "manager": override.manager_id,
                "reason": override.reason,
                "refund_cents": cash,
            },
        )
        return {
            "receipt_number": r.receipt_number,
            "refund_cents": max(cash, 0),
            "change_back_cents": max(-cash, 0),  # cash the customer returns (cashless-ATM change)
        }

    try:
        result = await req.commit(fn, label="void")
    except StorageError as exc:  # disk or map full, or the disk failed
        raise _void_not_saved(exc, given_back) from exc
    except (lmdb.Error, OSError) as exc:
        # answered, not crashed: a crashed command is redelivered and then quarantined
        raise _void_not_saved(as_storage_error(exc), given_back) from exc
    ctx.ledger_generation += 1
    req.hub.notify_outbox()
    _actor(req).publish()
    return result


def _void_not_saved(err: StorageError, given_back: tuple[Tender, ...]) -> StorageError:
    """The void's final commit failed: its intent is saved and the terminal's void is idempotent, so
    voiding the sale again (once the store writes again) finishes it."""
    log.error("void not saved (%s); its intent is kept for the retry", err.__cause__ or err)
    money = " Its card payments are given back already." if given_back else ""
    message = f"The void could not be saved ({err.message}).{money} Void the sale again to finish it."
    out = StorageError(message, code=err.code)
    out.__cause__ = err
    return out


# ---------------------------------------------------------------------------------------------- demo
@handles(p.DemoScale)
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
    _actor(req).publish()
    return {}


@handles(p.DemoTerminal)
async def demo_terminal(req: Request, msg: p.DemoTerminal) -> Any:
    hub = req.hub
    if not hub.config.server.demo:
        raise Forbidden("Only the demo store simulates a terminal.")
    sim = hub.services.demo.terminal.get(req.register_id)
    if sim is None:
        raise Refused("The demo store runs without a simulated terminal.", code="no_terminal")
    sim.set_mode(msg.mode, decline_code=msg.decline_code, timeout_seconds=msg.timeout_seconds)
    _actor(req).publish()
    return {}


def receipt_html(hub: Hub, number: int) -> str | None:
    rec = hub.store.get("sales", u64(number), SaleRecord)
    return None if rec is None else render_receipt_html(rec.receipt)


__all__ = ["timedelta"]
