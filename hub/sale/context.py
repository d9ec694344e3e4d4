"""The sale's shared state: the register's sale, the per-hub context, the helpers every sale module uses.

Other packages (orders, customers, back office, catalogue) use these names; the handlers live by concern
in checkin.py, cart.py, pay.py, void.py, with what the register shows in view.py.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import lmdb
import msgspec

from hub.commands import Request
from hub.domain import aamva, identity
from hub.domain import cart as carts
from hub.domain.cart import Cart
from hub.domain.catalog import CatalogIndex, Refusal
from hub.domain.discounts import DiscountPolicy
from hub.domain.limits.engine import LimitDecision
from hub.domain.limits.rules import Jurisdiction
from hub.domain.pricing import LoyaltyPolicy, PricedCart
from hub.domain.receipt import StoreIdentity
from hub.domain.tax import TaxTable
from hub.errors import BadRequest, HubError
from hub.store.env import Store, decode, encode
from hub.store.layout import OPEN_CARTS, REGISTER_SALES, OpenCart

if TYPE_CHECKING:
    from actors.register import RegisterActor
    from hub.config import StoreConfig
    from hub.devices import DeviceHub
    from hub.services import Services


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
    """What a register is in the middle of; persisted on every change so a reconnect or restart finds it
    (in two rows, schema 5: the open cart apart, see ``save_cart``)."""

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


class DecidedLimits(msgspec.Struct):
    """A limits decision kept for the customer and cart it was made for (hub/sale/view.py current_limits)."""

    customer: CheckedIn
    cart: Cart | None
    checks: tuple[Any, ...]  # what of the customer the decision depends on, compared by value
    generation: int  # the customer's ledger generation when it was made
    minute: int
    decision: LimitDecision


class SaleSettings(msgspec.Struct, kw_only=True):
    tax_table: TaxTable
    discount_policy: DiscountPolicy = msgspec.field(default_factory=DiscountPolicy)
    loyalty: LoyaltyPolicy = msgspec.field(default_factory=LoyaltyPolicy)
    promotions: tuple[Any, ...] = ()


class SaleContext:
    """Per-hub state of the sale feature (not per register). It reads the store and the configuration,
    not the hub: it is built by the sale's setup step (hub/sale/opening.py), once the store is open; the
    store stays open until ``Hub.run`` returns."""

    def __init__(
        self,
        store: Store,
        config: StoreConfig,
        jurisdiction: Jurisdiction,
        settings: SaleSettings,
        id_key: bytes,
    ) -> None:
        self.store = store
        self.config = config
        self.jurisdiction = jurisdiction
        self.settings = settings
        self.id_key = id_key
        self.index = CatalogIndex()
        self.scales: dict[str, ScaleState] = {}
        # per customer, kept with the customer's ledger generation (hub.store.layout.LEDGER_TOPIC): a
        # committed sale, void, return or merge of that customer may have changed their purchase history
        self.limits_cache: dict[str, DecidedLimits] = {}
        self.usage_cache: dict[str, tuple[Any, dict[str, int]]] = {}
        self.receipt_views: dict[int, dict[str, Any]] = {}
        self._today: tuple[int, date] = (-1, date.min)
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
            name=config.store.name,
            licence=config.store.licence,
            address=config.store.address,
            timezone=config.store.time_zone,
        )

    @property
    def zone(self) -> Any:
        return self.config.zone

    def today(self, now: datetime | None = None) -> date:
        """The store's local date (of ``now``); asked on every scan, so converted once a minute (a zone's
        offset is whole minutes: the date cannot change within a UTC minute)."""
        if now is not None:
            return now.astimezone(self.zone).date()
        t = time.time()
        minute = int(t) // 60
        if self._today[0] != minute:
            self._today = (minute, datetime.fromtimestamp(t, UTC).astimezone(self.zone).date())
        return self._today[1]


def ctx_of(services: Services) -> SaleContext:
    ctx = services.sale
    if ctx is None:
        raise LookupError("This hub runs no sale.")
    return ctx


def sale_of(actor: RegisterActor) -> RegisterSale:
    s = actor.sale
    if s is None:
        s = load_sale(actor.parts.store, actor.id)
        actor.set_sale(s)
    return s


def load_sale(store: Store, register_id: str) -> RegisterSale:
    """The register's sale as the store keeps it: the sale's row with the open cart's row (if any) in it."""
    with store.read() as txn:
        raw = REGISTER_SALES.get(txn, store, register_id)
        row = OPEN_CARTS.get(txn, store, register_id)
    sale = decode(raw, RegisterSale) if raw is not None else RegisterSale(register_id=register_id)
    if row is not None:
        # written after the sale's row whenever the cart changed alone: its notice is the later one
        sale.cart, sale.notice = row.cart, row.notice
    return sale


def actor_of(req: Request) -> RegisterActor:
    return req.register


def _encoded(value: Any) -> bytes:
    try:
        return encode(value)
    except (OverflowError, msgspec.EncodeError):
        # a number beyond what the store keeps (2^64): refused, and the register rolls the change back
        raise BadRequest("A number in this change is out of range; nothing was changed.") from None


def sale_writer(sale: RegisterSale, store: Store) -> Callable[[lmdb.Transaction], None]:
    """Writes the whole sale (its row and its open cart's row, or no cart row when there is no cart) in the
    writer's transaction; encoded now, so a value out of range refuses the change before it is queued."""
    register_id = sale.register_id
    blob = _encoded(msgspec.structs.replace(sale, cart=None))
    cart = _encoded(OpenCart(cart=sale.cart, notice=sale.notice)) if sale.cart is not None else None
    sales_db, carts_db = store.db(REGISTER_SALES.db), store.db(OPEN_CARTS.db)
    key = REGISTER_SALES.raw_key(register_id)

    def put(txn: lmdb.Transaction) -> None:
        txn.put(key, blob, db=sales_db)
        if cart is None:
            txn.delete(key, db=carts_db)
        else:
            txn.put(key, cart, db=carts_db)

    return put


async def save(req: Request, sale: RegisterSale, *, reply: Any = None) -> Any:
    """Persist the register's whole sale state (a check-in, park, recall, end: the customer, the parked
    carts or the order changed) with this command's reply, behind the answer (a cart being built; the sale
    itself is committed before it is acknowledged)."""
    # writes the sale's row and its cart's row whole: a newer whole save in the same batch makes it unneeded
    # (its own key: a later cart-only save does not write the sale's row, so it never supersedes this one)
    result = await req.commit_behind(
        sale_writer(sale, req.store), reply, label="cart", state_key=(REGISTER_SALES.name, sale.register_id)
    )
    actor_of(req).publish()
    return result


async def save_cart(req: Request, sale: RegisterSale, *, reply: Any = None) -> Any:
    """Persist a change of the open cart alone (a scan, a weighing, a quantity, a discount): the cart's row
    with the notice it left, not the customer or the parked carts, whose row has not changed."""
    cart = sale.cart
    if cart is None:  # nothing to keep apart: the whole sale says there is no cart
        return await save(req, sale, reply=reply)
    blob = _encoded(OpenCart(cart=cart, notice=sale.notice))
    db, key = req.store.db(OPEN_CARTS.db), OPEN_CARTS.raw_key(sale.register_id)

    def put(txn: lmdb.Transaction) -> None:
        txn.put(key, blob, db=db)

    # writes the cart's row whole: a newer cart-only save of this register in the same batch makes it unneeded
    result = await req.commit_behind(put, reply, label="cart", state_key=(OPEN_CARTS.name, sale.register_id))
    actor_of(req).publish()
    return result


def notice(sale: RegisterSale, level: str, text_: str) -> None:
    sale.notice = {"level": level, "text": text_}


def cart_of(sale: RegisterSale, register_id: str) -> Cart:
    if sale.cart is None:
        now = datetime.now(UTC)
        sale.cart = carts.new_cart(
            f"{register_id}-{secrets.token_hex(4)}",
            register_id,
            now,
            sale.customer.customer_id if sale.customer else "",
        )
    return sale.cart


def need_customer(sale: RegisterSale) -> CheckedIn:
    c = sale.customer
    if c is None:
        raise Refused("Check in the customer first: scan their ID.", code="no_customer")
    if not c.allowed:
        raise Refused("This customer may not buy: " + "; ".join(c.reasons), code="customer_refused")
    return c


def paired_device(config: StoreConfig, devices: DeviceHub | None, register_id: str, kind: str) -> str:
    """The device of ``kind`` serving a register: from store.toml, else one paired at start (the demo's)."""
    configured = ""
    for reg in config.registers:  # config.register's search without its generator: asked on every snapshot
        if reg.id == register_id:
            configured = getattr(reg, kind, "")
            break
    if configured:
        return str(configured)
    if devices is not None:
        for device_id, r in devices.paired.items():
            if r == register_id and devices.kinds.get(device_id) == kind:
                return str(device_id)
    return f"demo-{kind.replace('_', '-')}-{register_id}"
