"""Every key layout of the store, declared once: which table, how its keys are built, what its values are.

Modules read and write through these (``RETURNS.get(txn, store, 7)``), never with a key built by hand. The
old ``kv`` table of prefixed keys is gone from schema 3 on: every layout it held has a table of its own
here, and hub/store/migrations.py moves a store written before and drops it.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from hub.domain.cart import Cart
from hub.domain.drawer import DrawerEvent
from hub.domain.give_back import PendingReversal, VoidIntent
from hub.domain.ledger import LedgerEntry
from hub.domain.receipt import ReturnedStock, ReturnRecord, VoidRecord
from hub.store.tables import (
    TEXT,
    U64,
    Cell,
    Composite,
    Empty,
    Flag,
    IsoTime,
    Msgpack,
    Raw,
    Table,
    TextValue,
    U64Value,
)

# ---- commit topics (hub/store/commits.py) ----
# any purchase-ledger write; also marked per customer (``generation(LEDGER_TOPIC, customer_id)``): the
# limits caches of a customer follow that customer's sales, voids, merges and purges, nobody else's
LEDGER_TOPIC = "ledger"
OPEN_DRAWERS_TOPIC = "open_drawers"  # a register's drawer opened, handed over or closed
STATE_OUTBOX_TOPIC = "state_outbox"  # an entry was added to the state outbox: its sender wakes

# ---- the purchase ledger (limits windows, a customer's history) ----
# customer id NUL u64 micros(sold at) u64 receipt number -> LedgerEntry; scan one customer with
# ``prefix=(customer_id,)``, a window with ``start=(customer_id, micros(since))``
LEDGER: Table[tuple[str, int, int], LedgerEntry] = Table(
    "ledger",
    "ledger",
    Composite(str, int, int),
    Msgpack(LedgerEntry),
    marks=LEDGER_TOPIC,
    marks_key=lambda k: k[0],
)

# ---- the state outbox's companions (hub/state_channel/outbox_store.py) ----
STATE_REFS: Table[str, str] = Table(
    "state_refs", "state_refs", TEXT, TextValue()
)  # idempotency key -> state id
# low-water marks: no entry of that outbox below this seq is unsent (a pass reads only the tail)
STATE_LOW: Table[str, int] = Table(
    "state_low", "low_marks", TEXT, U64Value(), prefix=b"state:"
)  # per licence
CRM_LOW: Cell[int] = Cell("crm_low", "low_marks", b"crm", U64Value())  # hub/crm/outbox_store.py
# per delivery table of hub/orders ("notices", "order_callbacks")
DELIVERY_LOW: Table[str, int] = Table("delivery_low", "low_marks", TEXT, U64Value(), prefix=b"delivery:")

# ---- pulls from the state system (hub/state_channel/pulls.py): kind, licence -> when the last pull began
PULL_MARKS: Table[tuple[str, str], datetime] = Table(
    "pull_marks", "pull_marks", Composite(str, str), IsoTime()
)

# ---- returns (hub/backoffice/returns.py, records.py) ----
RETURNS: Table[int, ReturnRecord] = Table("returns", "returns", U64, Msgpack(ReturnRecord))
# u64 receipt number + u64 return number -> b"": the returns of one sale
RETURNS_BY_RECEIPT: Table[tuple[int, int], None] = Table(
    "returns_by_receipt", "returns_by_receipt", Composite(int, int), Empty()
)
# u64 return number + package tag -> ReturnedStock (quarantined, never back on sale)
RETURNED_STOCK: Table[tuple[int, str], ReturnedStock] = Table(
    "returned_stock", "returned_stock", Composite(int, str), Msgpack(ReturnedStock)
)

# ---- meta: one-off facts of the store ----
SCHEMA_VERSION: Cell[int] = Cell("schema", "meta", b"schema", U64Value())  # hub/store/migrations.py
RETURN_SEQ: Cell[int] = Cell("return_seq", "meta", b"return_seq", U64Value())  # the last return number
# the demo planted the store's packages in its sandbox facility (hub/state_channel/demo.py)
DEMO_ALIGNED: Cell[bool] = Cell("demo_aligned", "meta", b"state_channel:demo_aligned", Flag())

# ---- stored replies (idempotent retries of the live protocol): device id NUL message id -> the msgpack of
# hub.live.replies.StoredReply (bound here when hub/live/replies.py reads and writes through this table)
REPLIES: Table[tuple[str, str], bytes] = Table("replies", "replies", Composite(str, str), Raw())

# ---- the register's sale (hub/sale) ----
# register id -> the id of its open drawer session (hub/sale/drawer.py; the session is in "drawers")
# (marked per register: the register's screen keeps its drawer until the next write for that register)
OPEN_DRAWERS: Table[str, str] = Table(
    "open_drawers",
    "open_drawers",
    TEXT,
    TextValue(),
    marks=OPEN_DRAWERS_TOPIC,
    marks_key=lambda register_id: register_id,
)
# u64 receipt number -> VoidRecord (hub/sale/void.py)
VOIDS: Table[int, VoidRecord] = Table("voids", "voids", U64, Msgpack(VoidRecord))
# u64 receipt number -> VoidIntent: a void whose payments are being given back (hub/sale/void.py)
VOID_INTENTS: Table[int, VoidIntent] = Table("void_intents", "void_intents", U64, Msgpack(VoidIntent))
# card reference -> PendingReversal (hub/sale/reversals.py)
PENDING_REVERSALS: Table[str, PendingReversal] = Table(
    "pending_reversals", "pending_reversals", TEXT, Msgpack(PendingReversal)
)
# the store's customer queue: the msgpack of hub.sale.queue.QueueState, kept raw here because its
# waiting customers are hub/sale's CheckedIn (hub/sale/queue.py decodes it)
CUSTOMER_QUEUE: Cell[bytes] = Cell("customer_queue", "meta", b"customer_queue", Raw())

# ---- the register's sale, in two rows (schema 5): a cart edit, the most frequent write of the hub, writes
# the cart row only; a check-in, park, recall, end or committed sale writes both
# register id -> the msgpack of hub.sale.context.RegisterSale WITHOUT its open cart (the customer with their
# check-in decision, the parked carts, the last receipt number, the order picked up), kept raw here because
# RegisterSale is hub/sale's (hub/sale/context.py encodes and decodes it); the table is the old "carts"
REGISTER_SALES: Table[str, bytes] = Table("register_sales", "carts", TEXT, Raw())


class OpenCart(msgspec.Struct, kw_only=True):
    """A register's open cart with the notice its last change left on the screen (a restarted hub shows
    what the register showed)."""

    cart: Cart
    notice: dict[str, str] | None = None


# register id -> its open cart; no row: no open cart (the sale row's notice is the screen's)
OPEN_CARTS: Table[str, OpenCart] = Table("open_carts", "open_carts", TEXT, Msgpack(OpenCart))

# ---- drawer sessions' cash sales (schema 4; hub/sale/drawer.py) ----
# session id NUL u64 n -> the session's n-th cash sale (from 1). The session in "drawers" keeps their count
# and sum as running totals (DrawerSession.folded_sales*), so a sale adds one row and re-reads none.
DRAWER_SALES: Table[tuple[str, int], DrawerEvent] = Table(
    "drawer_sales", "drawer_events", Composite(str, int), Msgpack(DrawerEvent)
)
