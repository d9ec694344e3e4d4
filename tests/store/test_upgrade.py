"""A store written by the previous release (tests/fixtures/release_store) opens, migrates and sells.

The fixture is the data directory of a demo hub of release 0.1.0 (commit 5efca09), with the old ``kv``
layouts in it. Today's code must move every fact to its table and leave ``kv`` empty (schema 3), fold the
drawers' cash sales into rows and running totals (schema 4), keep a register's open cart in a row of its own
(schema 5), refuse a
store newer than itself, and run a hub on the upgraded store that sells and reports each sale to the state
exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tarfile
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import lmdb
import msgspec
import pytest
import trio

from hub import audit
from hub.backoffice import records
from hub.client import connect
from hub.demo import DEMO_PAIRING, DEMO_STAFF
from hub.domain.cart import new_cart
from hub.domain.catalog import Customer, Package, Product
from hub.domain.drawer import DrawerSession
from hub.domain.give_back import PendingReversal, VoidIntent
from hub.domain.orders import Order
from hub.domain.outbox import OutboxEntry
from hub.sale.context import CheckedIn, RegisterSale, load_sale
from hub.sale.queue import QueueState
from hub.state_channel import outbox_store
from hub.store import layout
from hub.store.env import SCHEMA, Store, StoreVersionError, decode, encode
from hub.store.keys import text, u64
from hub.store.migrations import TO_2, TO_3, migrate, open_store, upgrade
from tests.support.hubproc import drain, start_demo

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "release_store" / "store-0.1.0.tar.xz"
LICENCE = "C10-0000001-LIC"
PINS = {s: p for s, _, _, p in DEMO_STAFF}
# not reachable in a short demo run (README.md of the fixture): test_the_crm_mark_moves and
# test_a_pending_card_reversal_and_a_void_intent_move write them
NOT_IN_FIXTURE = {b"crm:low", b"void-intent:", b"reversal:"}


def unpack(tmp: Path) -> Path:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "data"


def kv(store: Store) -> dict[bytes, bytes] | None:
    """The old ``kv`` table's keys (no table of today's layout: opened by name); None once it is dropped."""
    with store.env.begin(write=True) as txn:
        try:
            db = store.env.open_db(b"kv", txn=txn, create=False)
        except lmdb.NotFoundError:
            return None
        return {bytes(k): bytes(v) for k, v in txn.cursor(db=db)}


def put_old(store: Store, keys: dict[bytes, bytes], *, schema: int) -> None:
    """Write ``keys`` into the old ``kv`` table of a store of ``schema``, as a release did."""
    with store.env.begin(write=True) as txn:
        db = store.env.open_db(b"kv", txn=txn)
        for k, v in keys.items():
            txn.put(k, v, db=db)
        layout.SCHEMA_VERSION.put(txn, store, schema)


def dump(store: Store) -> dict[str, dict[bytes, bytes]]:
    """Every table's bytes."""
    with store.read() as txn:
        return {
            name: {bytes(k): bytes(v) for k, v in txn.cursor(db=db)}
            for name, db in sorted(store.tables.items())
        }


def test_every_fact_of_the_release_store_is_in_its_table_after_the_upgrade(tmp_path: Path) -> None:
    store = Store(unpack(tmp_path))
    assert store.schema() == 1
    old = kv(store)
    assert old is not None
    audit_before = store.count("audit")
    with store.read() as txn:
        drawers_before = {bytes(k): decode(v, DrawerSession) for k, v in txn.cursor(db=store.db("drawers"))}

    moved = upgrade(store)

    assert store.schema() == SCHEMA == 5
    assert moved == {
        "state_refs": 6,
        "state_low": 1,
        "delivery_low": 1,
        "pull_marks": 1,
        "demo_aligned": 1,
        "returns": 1,
        "returns_by_receipt": 1,
        "returned_stock": 1,
        # schema 3: what hub/sale kept in kv
        "open_drawers": 1,
        "voids": 1,
        "customer_queue": 1,
        # schema 4: the drawer sessions' cash sales, to rows of their own beside running totals
        "drawer_sales": 4,
    }
    # each old key's value is now under its new key, byte for byte, and the old table is gone
    assert kv(store) is None
    with store.read() as txn:
        for step in TO_2 + TO_3:
            mine = {k: v for k, v in old.items() if k.startswith(step.old)}
            assert mine or step.old in NOT_IN_FIXTURE, f"the fixture has no {step.old!r} key"
            for k, v in mine.items():
                new_key = (
                    step.to.key
                    if isinstance(step.to, layout.Cell)
                    else step.to.prefix + step.rekey(k[len(step.old) :])
                )
                assert bytes(txn.get(new_key, db=store.db(step.to.db))) == v, k

    with store.read() as txn:
        # the open drawer of R1, still open
        session_id = layout.OPEN_DRAWERS.get(txn, store, "R1")
        assert session_id is not None
        drawer = decode(txn.get(text(session_id), db=store.db("drawers")), DrawerSession)
        assert drawer.status == "open" and drawer.register_id == "R1"
        # every session's cash sales left its record for their rows; what each session says is unchanged
        for key, before in drawers_before.items():
            after = decode(txn.get(key, db=store.db("drawers")), DrawerSession)
            sales = [e for e in before.events if e.kind == "cash_sale"]
            assert [e for e in after.events if e.kind == "cash_sale"] == []
            assert [e for e in after.events] == [e for e in before.events if e.kind != "cash_sale"]
            rows = layout.DRAWER_SALES.scan(txn, store, (before.session_id,))
            assert [(n, e) for (_, n), e in rows] == list(enumerate(sales, start=1))
            assert after.folded_sales == after.cash_sales == len(sales)
            assert after.cash_sales_cents == before.cash_sales_cents == sum(e.amount_cents for e in sales)
            assert after.expected_cents == before.expected_cents
        # the void of sale 2 and the return of sale 1, with its quarantined stock
        [(voided, void)] = list(layout.VOIDS.scan(txn, store))
        assert voided == void.receipt_number == 2
        ret = layout.RETURNS.get(txn, store, 1)
        assert ret is not None and ret.original_receipt_number == 1 and ret.state_status == "reported"
        assert layout.RETURNS_BY_RECEIPT.keys(txn, store, (1,)) == [(1, 1)]
        [((n, tag), stock)] = list(layout.RETURNED_STOCK.scan(txn, store))
        assert (n, tag, stock.tag, stock.status) == (1, ret.lines[0].package_tag, tag, "quarantined")
        # the state channel's marks and references
        assert layout.STATE_LOW.get(txn, store, LICENCE) == 7
        assert layout.DELIVERY_LOW.get(txn, store, "notices") == 5
        pulled = layout.PULL_MARKS.get(txn, store, ("packages", LICENCE))
        assert isinstance(pulled, datetime) and pulled.tzinfo is not None
        assert layout.DEMO_ALIGNED.get(txn, store) is True
        assert layout.RETURN_SEQ.get(txn, store) == 1
        # the queue (a customer waiting), as hub/sale reads it
        queue = decode(layout.CUSTOMER_QUEUE.get(txn, store) or b"", QueueState)
        assert len(queue.waiting) == 1 and queue.last_ticket == 1
        # the online order, the customers and the purchase ledger are where they were
        orders = [decode(v, Order) for _, v in txn.cursor(db=store.db("orders"))]
        assert "fixture-1" in {o.external_id for o in orders}
        adult = decode(txn.get(b"demo-adult", db=store.db("customers")), Customer)
        assert adult.loyalty_points > 0
        bought = [k for k, _ in layout.LEDGER.scan(txn, store, ("demo-adult",))]
        assert [receipt for _, _, receipt in bought] == [1, 2, 4, 5]
    assert outbox_store.refs(store) == {
        f"{LICENCE}-1": "10001",
        f"{LICENCE}-2": "10002",
        f"{LICENCE}-3": "10003",
        f"{LICENCE}-4": "10004",
        f"return-{LICENCE}-1-1": "10001",
        f"void-{LICENCE}-2": "10002",
    }
    [pending] = outbox_store.unsent(store, LICENCE)
    assert pending.idempotency_key == f"{LICENCE}-5" and pending.state == "pending"
    assert [r.return_number for r in records.returns_of(store, 1)] == [1]
    assert [v.receipt_number for v in records.voids(store)] == [2]
    # the upgrade is in the audit log, whose chain still holds
    assert store.count("audit") == audit_before + 1
    with store.read() as txn:
        last = decode(txn.get(u64(audit_before + 1), db=store.db("audit")), audit.AuditEntry)
    assert last.action == "store_upgraded" and last.detail["from_schema"] == 1
    assert audit.verify(store)[1] is None
    store.close()


def test_the_crm_mark_moves(tmp_path: Path) -> None:
    """The CRM bridge's low-water mark, as the release kept it (``kv`` ``crm:low``, a u64)."""
    store = Store(tmp_path / "data")
    put_old(store, {b"crm:low": u64(42)}, schema=1)
    assert upgrade(store) == {"crm_low": 1}
    assert layout.CRM_LOW.read(store) == 42 and kv(store) is None
    store.close()


def test_a_pending_card_reversal_and_a_void_intent_move(tmp_path: Path) -> None:
    """The two records a card void left unresolved, as the release kept them in ``kv``
    (``reversal:<reference>``, ``void-intent:<u64 receipt>``, msgpack), on a schema-2 store."""
    store = Store(tmp_path / "data")
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    rev = PendingReversal(
        reference="REF-9", device_id="T1", amount_cents=1250, reason="timed out", created_at=at
    )
    intent = VoidIntent(receipt_number=7, references=("REF-7",), started_at=at, staff="maria", register="R1")
    put_old(store, {b"reversal:REF-9": encode(rev), b"void-intent:" + u64(7): encode(intent)}, schema=2)
    assert upgrade(store) == {"pending_reversals": 1, "void_intents": 1}
    assert layout.PENDING_REVERSALS.all(store) == [rev]
    assert layout.VOID_INTENTS.read(store, 7) == intent
    assert kv(store) is None and store.schema() == SCHEMA
    store.close()


def test_an_open_cart_leaves_its_sale_row(tmp_path: Path) -> None:
    """Schema 5: a register's open cart (and the notice beside it) moves out of the sale's row into a row of
    its own; the rest of the sale is kept; a register with no open cart is left as it was. The hub then reads
    back the same sale (customer, cart, parked carts, notice)."""
    store = Store(tmp_path / "data")
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    customer = CheckedIn(
        customer_id="C-1",
        id_hash="h" * 64,
        customer_type="adult",
        customer_class="adult",
        age=40,
        resident=True,
        id_jurisdiction="CA",
        birth_date=date(1986, 1, 1),
        id_expiry=date(2030, 1, 1),
        label="Adult, 40",
        allowed=True,
    )
    cart = new_cart("R1-abcd", "R1", at, "C-1")
    parked = msgspec.structs.replace(new_cart("R1-park", "R1", at, ""), parked_at=at)
    open_sale = RegisterSale(
        register_id="R1",
        cart=cart,
        customer=customer,
        parked=[parked],
        notice={"level": "info", "text": "Added."},
        last_receipt_number=9,
    )
    idle = RegisterSale(register_id="R2", parked=[parked], last_receipt_number=3)
    with store.env.begin(write=True) as txn:
        # as schema 4 wrote them: the whole sale, cart included, under the register's id in "carts"
        txn.put(b"R1", encode(open_sale), db=store.db("carts"))
        txn.put(b"R2", encode(idle), db=store.db("carts"))
        layout.SCHEMA_VERSION.put(txn, store, 4)
    idle_bytes = dump(store)["carts"][b"R2"]

    assert upgrade(store) == {"open_carts": 1}

    assert layout.OPEN_CARTS.read(store, "R1") == layout.OpenCart(cart=cart, notice=open_sale.notice)
    assert layout.OPEN_CARTS.read(store, "R2") is None
    rest = decode(layout.REGISTER_SALES.read(store, "R1") or b"", RegisterSale)
    assert rest == msgspec.structs.replace(open_sale, cart=None)
    assert dump(store)["carts"][b"R2"] == idle_bytes  # nothing to move: not rewritten
    assert load_sale(store, "R1") == open_sale and load_sale(store, "R2") == idle
    assert load_sale(store, "R3") == RegisterSale(register_id="R3")
    store.close()


def test_keys_no_migration_knows_stay_in_the_old_table(tmp_path: Path) -> None:
    """A key in ``kv`` that no release wrote is not lost: the table stays with it, the rest moves."""
    store = Store(tmp_path / "data")
    put_old(store, {b"open_drawer:R1": b"D-1", b"mystery": b"?"}, schema=2)
    assert upgrade(store) == {"open_drawers": 1}
    assert kv(store) == {b"mystery": b"?"} and layout.OPEN_DRAWERS.read(store, "R1") == "D-1"
    store.close()


def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    data = unpack(tmp_path)
    store = open_store(data)
    once = dump(store)
    assert upgrade(store) == {}  # already at today's schema
    with store.env.begin(write=True) as txn:
        assert migrate(txn, store, 1) == {}  # every step again, from the start: nothing left to move
    assert dump(store) == once
    store.close()
    again = open_store(data)
    assert dump(again) == once
    again.close()


def test_a_store_newer_than_the_code_refuses_to_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = open_store(data)
    with store.env.begin(write=True) as txn:
        layout.SCHEMA_VERSION.put(txn, store, SCHEMA + 1)
    store.close()
    for readonly in (False, True):
        with pytest.raises(
            StoreVersionError, match=rf"newer storehub \(store schema {SCHEMA + 1}; this version"
        ):
            Store(data, readonly=readonly)
    # the command line says so and stops, and the store is left as it was
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "audit", "verify", "--data", str(data)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "written by a newer storehub" in done.stderr and "Traceback" not in done.stderr


def test_a_report_beside_the_hub_refuses_a_store_not_yet_upgraded(tmp_path: Path) -> None:
    """`storehub report` reads the store read-only: on the release's layout it would silently miss the open
    drawers and voids kept in their old places, so it says what to do instead; once upgraded it reports."""
    data = unpack(tmp_path)

    def report() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hub.report_cli", "readiness", "--data", str(data)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )

    before = dump(Store(data, readonly=True))
    refused = report()
    assert refused.returncode == 2, refused.stdout
    assert "older layout (store schema 1" in refused.stderr and "storehub run" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert dump(Store(data, readonly=True)) == before  # nothing written
    open_store(data).close()
    done = report()  # 1: the release's day left something to do before opening; the report itself ran
    assert done.returncode in (0, 1) and not done.stderr, done.stderr
    # the pending sale is found through the outbox's low mark, which the upgrade moved out of kv
    assert "Ready to open:" in done.stdout and "Unsent to the state: 1 of 1" in done.stdout


# ------------------------------------------------------------------------- a real hub on the upgraded store


def sellable_tag(data: Path) -> str:
    store = Store(data, readonly=True)
    try:
        with store.read() as txn:
            products = {p.id: p for p in (decode(v, Product) for _, v in txn.cursor(db=store.db("products")))}
            today = datetime.now(UTC).date()
            for _, v in txn.cursor(db=store.db("packages")):
                p = decode(v, Package)
                product = products.get(p.product_id)
                if (
                    product is not None
                    and product.sold_by == "each"
                    and product.price_cents <= 50_00
                    and p.status == "active"
                    and p.lab_testing in ("passed", "retest_passed")
                    and p.quantity >= 5
                    and (p.expires_on is None or p.expires_on > today)
                ):
                    return p.tag
    finally:
        store.close()
    raise AssertionError("no sellable package in the fixture")


def audit_actions(store: Store) -> list[str]:
    with store.read() as txn:
        return [decode(v, audit.AuditEntry).action for _, v in txn.cursor(db=store.db("audit"))]


def outbox(data: Path) -> list[OutboxEntry]:
    store = Store(data, readonly=True)
    try:
        with store.read() as txn:
            return [decode(v, OutboxEntry) for _, v in txn.cursor(db=store.db("outbox"))]
    finally:
        store.close()


async def test_a_hub_on_the_upgraded_release_store_sells_and_reports_exactly_once(tmp_path: Path) -> None:
    data = unpack(tmp_path)
    tag = sellable_tag(data)
    before = {e.seq: e for e in outbox(data)}
    demo = await start_demo(data, sandbox=True, start_s=40)
    proc, ws_port, sandbox_url = demo.proc, demo.ws_port, demo.sandbox_url
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain, proc.stderr)
            with trio.fail_after(60):
                async with connect(f"ws://127.0.0.1:{ws_port}") as c:
                    await c.pair(DEMO_PAIRING["R1"])
                    await c.login("maria", PINS["maria"])
                    # no open_drawer: R1's drawer, opened under the release, is still open
                    await c.request(
                        "check_in_manual",
                        birth_date="1980-01-01",
                        id_expiry="2035-01-01",
                        id_jurisdiction="CA",
                        id_number="UPGRADE0001",
                        reason="release store upgrade test",
                    )
                    await c.request("add_package", tag=tag)
                    paid = await c.request("pay", tenders=[{"kind": "cash", "amount_cents": 100_00}])
                    assert paid["receipt_number"] == 6  # the release's receipt counter goes on
                # the pending sale of the release and the new one reach the state; nothing is sent twice
                async with httpx.AsyncClient(base_url=sandbox_url, timeout=10) as admin:
                    while True:
                        receipts = (await admin.get("/_sandbox/state")).json()["receipts"]
                        numbers = Counter(r["external_number"] for r in receipts)
                        if numbers[f"{LICENCE}-5"] and numbers[f"{LICENCE}-6"]:
                            break
                        await trio.sleep(0.1)
                assert set(numbers.values()) == {1}, numbers
                assert set(numbers) == {f"{LICENCE}-{n}" for n in range(1, 7)}
            proc.send_signal(signal.SIGINT)
            with trio.fail_after(30):
                await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    upgraded = Store(data, readonly=True)
    assert upgraded.schema() == SCHEMA
    assert [a for a in audit_actions(upgraded) if a == "store_upgraded"] == ["store_upgraded"]
    upgraded.close()
    after = outbox(data)
    assert [e.idempotency_key for e in after] == [e.idempotency_key for e in before.values()] + [
        f"{LICENCE}-6"
    ]
    assert all(e.state == "sent" for e in after)
    # the entries the release had sent were not sent again
    for e in after:
        if e.seq in before and before[e.seq].state == "sent":
            assert e == before[e.seq]
