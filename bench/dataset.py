"""A store as the benchmark needs it, written straight into LMDB before the hub starts.

Packages, customers and a sale history of any size, staff and pairing codes for every register, and a
``store.toml`` for ``storehub run``. Everything is derived from an index, so the load generator can
rebuild a customer's licence scan or a package tag without being sent the whole catalogue.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import msgspec

from hub import auth
from hub.audit import GENESIS, HEAD_KEY, AuditEntry, entry_hash
from hub.domain.catalog import Customer, Package, Product
from hub.domain.demo_catalogue import aamva_payload, demo_products, metrc_tag
from hub.domain.ledger import LedgerEntry
from hub.sale.inventory import id_hash, put_customer, put_package, put_product
from hub.store.env import Store, encode
from hub.store.keys import joined, micros, u64
from hub.store.layout import LEDGER

JURISDICTION = "CA"
TIME_ZONE = "America/Los_Angeles"
LICENCE = "C10-0000001-BENCH"
ID_HASH_KEY = "storehub-bench-id-hash-key"
FACILITY = "BE0C4A11"
# a sale: three pre-rolls of 1 g (by tag) and one weighed gram of bulk flower = 4 g of CA's 28.5 g a day
UNIT_PRODUCTS = ("PRE-001", "PRE-002", "PRE-004", "PRE-006")
WEIGHT_PRODUCT = "FLW-B16"
MANAGER = ("maria", "Maria Manager", "manager", "3333")
FLOAT = {"B100": 5, "B20": 10, "B5": 10, "C25": 40}  # $760.00 counted into every drawer (change for $500)
RECEIPT_SEQ = b"receipt_seq"  # hub.sale.commit.RECEIPT_SEQ: history takes the first numbers

STORE_TOML = """\
[store]
name = "storehub bench store"
licence = "{licence}"
jurisdiction = "{jurisdiction}"
time_zone = "{tz}"

[server]
host = "127.0.0.1"
http_port = 0
ws_port = 0
# the bench drives the register's simulated scale (demo_scale); nothing else differs from a real store
demo = true

[storage]
data_dir = "{data}"
map_size_mb = {map_mb}

[security]
id_hash_key = "{key}"
# every simulated register pairs from the load generator's one address within the same minute
pairing_attempts_per_address = 10000
"""


def package_tag(i: int) -> str:
    return metrc_tag(FACILITY, i + 1)


def customer_id(i: int) -> str:
    return f"C{i:08d}"


def licence_number(i: int) -> str:
    return f"B{i:07d}"


def customer_birth(i: int) -> date:
    return date(1960, 1, 1) + timedelta(days=i % 12_000)  # every one of them 30 or older


def customer_scan(i: int, today: date) -> str:
    """The AAMVA payload a scanner reads from customer ``i``'s licence."""
    expiry = today + timedelta(days=365 * 3 + i % 700)
    return aamva_payload(
        jurisdiction=JURISDICTION,
        number=licence_number(i),
        family=f"BENCH{i}",
        given="PAT",
        middle="",
        birth=customer_birth(i),
        expiry=expiry,
        issued=expiry - timedelta(days=365 * 8),
        sex="9",
        street="1 BENCH WAY",
        city="SACRAMENTO",
        postal="95814",
    )


def staff_for(register_index: int) -> tuple[str, str, str, str]:
    return (f"bt{register_index:03d}", f"Budtender {register_index}", "budtender", f"{4000 + register_index}")


def pairing_code(register_index: int) -> str:
    return f"{70_000_000 + register_index:08d}"


def register_id(register_index: int) -> str:
    return f"R{register_index:03d}"


def write_config(path: Path, data_dir: Path, registers: int, *, map_mb: int) -> Path:
    text = STORE_TOML.format(
        licence=LICENCE,
        jurisdiction=JURISDICTION,
        tz=TIME_ZONE,
        data=data_dir,
        map_mb=map_mb,
        key=ID_HASH_KEY,
    )
    for r in range(1, registers + 1):
        text += f'\n[[registers]]\nid = "{register_id(r)}"\nname = "Register {r}"\n'
    path.write_text(text, encoding="utf-8")
    return path


def _packages(products: tuple[Product, ...], n: int, today: date) -> list[Package]:
    received = datetime.combine(today - timedelta(days=30), time(15, 0), UTC)
    out = []
    for i in range(n):
        product = products[i % len(products)]
        out.append(
            Package(
                tag=package_tag(i),
                product_id=product.id,
                # never runs out during a bench: units, or mg for bulk flower (1 t is plenty)
                quantity=1_000_000_000 if product.sold_by == "weight" else 10_000_000,
                status="active",
                lab_testing="passed",
                expires_on=today + timedelta(days=365),
                location="Vault A",
                received_at=received,
                batch=f"BNCH-{i % 97:02d}",
            )
        )
    return out


def tags_of(products: tuple[Product, ...], n_packages: int, wanted: tuple[str, ...], limit: int) -> list[str]:
    """Tags of packages of ``wanted`` products spread over the whole key range (not just the first pages)."""
    index = {p.id: k for k, p in enumerate(products)}
    firsts = [index[w] for w in wanted]
    per = max(1, limit // len(firsts))
    out = []
    for k in firsts:
        count = len(range(k, n_packages, len(products)))
        step = max(1, count // per)
        out.extend(package_tag(k + j * step * len(products)) for j in range(min(per, count)))
    return out


def _history_template(products: tuple[Product, ...], today: date) -> Any:
    """One real SaleRecord built by the domain core; history sales are copies with their own numbers."""
    from hub.domain import cart as carts
    from hub.domain.pricing import price_cart
    from hub.domain.receipt import SaleRecord, StoreIdentity, build_receipt
    from hub.domain.sale_plan import limit_items
    from hub.domain.tax import TaxTable
    from hub.domain.tender import Tender, settle
    from hub.sale.opening import DEFAULT_TAXES

    now = datetime.now(UTC)
    pkgs = _packages(products, len(products), today)
    cart = carts.new_cart("hist", "R001", now, "C0")
    for pkg in pkgs:
        if pkg.product_id in UNIT_PRODUCTS[:3]:
            product = next(p for p in products if p.id == pkg.product_id)
            change = carts.add_package(cart, pkg, product, today, quantity=1, now=now)
            cart = change.cart  # type: ignore[union-attr]
    priced = price_cart(cart, msgspec.convert(DEFAULT_TAXES, TaxTable), local_now=now)
    settlement = settle(priced.total_cents, [Tender(kind="cash", amount_cents=priced.total_cents + 500)])
    receipt = build_receipt(
        store=StoreIdentity(name="bench", licence=LICENCE, address="", timezone=TIME_ZONE),
        receipt_number=1,
        cart=cart,
        priced=priced,
        settlement=settlement,  # type: ignore[arg-type]
        cashier="Budtender 1",
        sold_at=now,
        customer_type="adult",
    )
    record = SaleRecord(
        receipt=receipt, customer_id="C0", drawer_session_id="D-R001", state_status="reported"
    )
    return record, limit_items(cart)


def _load_history(
    store: Store, products: tuple[Product, ...], n_sales: int, n_customers: int, today: date
) -> None:
    """``n_sales`` past sales over the last year: sales, sales_by_day, every customer's ledger, audit chain."""
    rng = random.Random(1)
    template, items = _history_template(products, today)
    # a year of trade, evenly up to a minute ago: today's and the last 24 h's sales are part of it
    zone = _zone()
    now = datetime.now(UTC)
    start = now - timedelta(days=365)
    span = (now - timedelta(minutes=1) - start).total_seconds()
    sales, by_day, ledger = [], [], []
    for n in range(1, n_sales + 1):
        at = start + timedelta(seconds=span * n / (n_sales + 1))
        cid = customer_id(rng.randrange(n_customers))
        receipt = msgspec.structs.replace(template.receipt, receipt_number=n, sold_at=at)
        sales.append((u64(n), encode(msgspec.structs.replace(template, receipt=receipt, customer_id=cid))))
        by_day.append((joined(at.astimezone(zone).date().isoformat().encode(), u64(n)), b""))
        ledger.append(
            (LEDGER.raw_key((cid, micros(at), n)), encode(LedgerEntry(receipt_number=n, at=at, items=items)))
        )
    ledger.sort()
    with store.env.begin(write=True) as txn:
        txn.cursor(db=store.db("sales")).putmulti(sales, append=True)
        txn.cursor(db=store.db("sales_by_day")).putmulti(by_day)
        txn.cursor(db=store.db("ledger")).putmulti(ledger)
        txn.put(RECEIPT_SEQ, n_sales.to_bytes(8, "big"), db=store.db("meta"))
    del sales, by_day, ledger
    # the audit chain of those sales, valid end to end (`storehub audit verify` passes)
    prev = GENESIS
    chunk: list[tuple[bytes, bytes]] = []
    for n in range(1, n_sales + 1):
        at = start + timedelta(seconds=span * n / (n_sales + 1))
        e = AuditEntry(
            seq=n,
            at=at,
            action="sale",
            staff="bt001",
            register="R001",
            detail={"receipt": n, "total_cents": template.receipt.total_cents},
            prev_hash=prev,
        )
        e.hash = prev = entry_hash(e)
        chunk.append((u64(n), encode(e)))
        if len(chunk) >= 100_000 or n == n_sales:
            with store.env.begin(write=True) as txn:
                txn.cursor(db=store.db("audit")).putmulti(chunk, append=True)
                txn.put(HEAD_KEY, u64(n) + prev.encode(), db=store.db("meta"))
            chunk = []


def prepare(
    data_dir: Path, *, packages: int, customers: int, history: int, registers: int, map_mb: int
) -> dict[str, Any]:
    """Write the whole store; return what the load generator needs to know about it."""
    today = datetime.now(UTC).astimezone(_zone()).date()
    data_dir.mkdir(parents=True, exist_ok=True)
    products = demo_products()
    store = Store(data_dir, map_size=map_mb << 20)
    try:
        key = ID_HASH_KEY.encode()
        with store.env.begin(write=True) as txn:
            for p in products:
                put_product(txn, store, p)
            for pkg in _packages(products, packages, today):
                put_package(txn, store, pkg)
            for i in range(customers):
                put_customer(
                    txn,
                    store,
                    Customer(
                        id=customer_id(i),
                        customer_type="adult",
                        residency=JURISDICTION,
                        birth_date=customer_birth(i),
                        id_hash=id_hash(key, JURISDICTION, licence_number(i)),
                        id_expires_on=today + timedelta(days=365 * 3),
                    ),
                )
        if history:
            _load_history(store, products, history, customers, today)
        people = [MANAGER] + [staff_for(r) for r in range(1, registers + 1)]
        # scrypt costs tens of ms a PIN: hash them on two threads (hashlib releases the GIL)
        with ThreadPoolExecutor(2) as pool:
            members = list(pool.map(lambda s: auth.new_staff(s[0], s[1], s[2], s[3]), people))  # type: ignore[arg-type]
        now = datetime.now(UTC)
        with store.env.begin(write=True) as txn:
            for m in members:
                auth.add_staff(txn, store, m, by="bench")
            for r in range(1, registers + 1):
                auth.create_pairing_code(
                    txn, store, register_id(r), by="bench", now=now, code=pairing_code(r)
                )
    finally:
        store.close()
    return {
        "today": today.isoformat(),
        "packages": packages,
        "customers": customers,
        "history": history,
        "unit_tags": tags_of(products, packages, UNIT_PRODUCTS, 400),
        "weight_tags": tags_of(products, packages, (WEIGHT_PRODUCT,), 50),
        "manager": {"id": MANAGER[0], "pin": MANAGER[3]},
    }


def _zone() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(TIME_ZONE)
