"""BioTrack through the hub, end to end over loopback HTTP: the sandbox's BioTrack side and a hub with the
sale and the state channel configured for ``biotrack-rest`` (2024: ``biotrack_api = "2024"``) or
``biotrack-2014``. Sales, voids and refunds arrive exactly once through lost answers and an outage; a
transfer is received through the 2024 API; the card lookup feeds the medical check-in."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from hub.app import Hub
from hub.client import HubClient, connect
from hub.domain.catalog import Package
from hub.domain.outbox import OutboxEntry
from hub.sale import inventory
from hub.store.env import decode
from hub.wiring import Features, SaleOptions
from sandbox import demo as sbx
from sandbox.server import SandboxConfig, SandboxHandle, serve
from sandbox.testing import SandboxAdmin
from tests.conftest import PINS, make_config, ws_url
from tests.state.conftest import ready, sell

# Products of the demo catalogue, stocked under BioTrack's 16-digit barcodes (what a BioTrack store's
# packages are called); the sandbox's BioTrack location holds the same packages.
STOCK = [  # (barcode, product id, units)
    ("6647128000100001", "PRE-001", 100),
    ("6647128000100002", "PRE-002", 100),
    ("6647128000100004", "PRE-004", 100),
]
MANAGER = {"manager": "maria", "pin": PINS["maria"]}


def state_toml(kind: str, url: str, api: str = "2024") -> str:
    base = f"{url}/biotrack" if kind == "biotrack-rest" else f"{url}/biotrack/serverjson.asp"
    return f"""
[state_system]
kind = "{kind}"
base_url = "{base}"
biotrack_api = "{api}"
license_number = "{sbx.BIOTRACK_LICENSE}"
ubi = "{sbx.BIOTRACK_UBI}"
username = "{sbx.BIOTRACK_USERNAME}"
password = "{sbx.BIOTRACK_PASSWORD}"
timeout_seconds = 3
"""


@dataclass
class World:
    hub: Hub
    sandbox: SandboxHandle
    admin: SandboxAdmin
    kind: str

    @property
    def adult(self) -> str:
        return self.hub.services.demo.store.customer("adult").id_scan  # type: ignore[no-any-return]

    def outbox(self) -> list[OutboxEntry]:
        with self.hub.store.read() as txn:
            return [decode(v, OutboxEntry) for _, v in txn.cursor(db=self.hub.store.db("outbox"))]

    async def wait_drained(self, timeout: float = 12) -> None:
        with trio.fail_after(timeout):
            while any(e.state != "sent" for e in self.outbox()):
                await trio.sleep(0.05)

    async def sales(self) -> list[dict[str, Any]]:
        state = await self.admin.state()
        return [s for s in state["biotrack_sales"] if s["license"] == sbx.BIOTRACK_LICENSE]

    def number_of(self, sale: dict[str, Any]) -> str:
        # REST keeps the hub's receipt number as ExternalID; the 2014 API only the nonce (the same number)
        return str(sale["external_id"] if self.kind == "biotrack-rest" else sale["nonce"])

    async def state_quantity(self, barcode: str) -> float:
        state = await self.admin.state()
        return float(next(p["quantity"] for p in state["packages"] if p["label"] == barcode))

    def rest(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.hub.http_port}",
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
        )


async def stock_biotrack_packages(hub: Hub, admin: SandboxAdmin) -> None:
    """The hub's packages and the state's inventory agree: the same barcodes, products and quantities."""

    def fn(txn: Any) -> None:
        for barcode, product_id, units in STOCK:
            inventory.put_package(txn, hub.store, Package(tag=barcode, product_id=product_id, quantity=units))

    await hub.writer.write(fn, label="test")
    await admin.upsert_packages(
        [
            {
                "license": sbx.BIOTRACK_LICENSE,
                "label": barcode,
                "item_name": inventory.product(hub.store, product_id).name,  # type: ignore[union-attr]
                "category": "Usable",
                "unit": "Each",
                "quantity": units,
            }
            for barcode, product_id, units in STOCK
        ]
    )


@asynccontextmanager
async def biotrack_world(
    kind: str,
    nursery: trio.Nursery,
    tmp_path: Path,
    hub_factory: Callable[..., Any],
    jurisdiction: str | None = None,
    api: str = "2024",
) -> AsyncIterator[World]:
    from hub.state_channel import feature as state_channel

    handle: SandboxHandle = await nursery.start(
        serve, SandboxConfig(data_dir=tmp_path / "sandbox", seed="demo")
    )
    config = make_config(tmp_path / "data", state_toml(kind, handle.url, api))
    config.server.demo = True
    if jurisdiction:
        config.store.jurisdiction = jurisdiction

    features = Features(
        sale=SaleOptions(demo=True),
        backoffice=True,  # returns
        state_channel=state_channel.ChannelOptions(
            retry_policy=state_channel.fast_retry_policy(), poll_seconds=0.2, schedule=False
        ),
    )
    hub = await hub_factory(config, features=features)
    admin = SandboxAdmin(handle.url)
    try:
        await stock_biotrack_packages(hub, admin)
        yield World(hub=hub, sandbox=handle, admin=admin, kind=kind)
    finally:
        await admin.aclose()
        handle.stop()


@pytest.fixture
async def rest_world(
    nursery: trio.Nursery, tmp_path: Path, hub_factory: Callable[..., Any]
) -> AsyncIterator[World]:
    async with biotrack_world("biotrack-rest", nursery, tmp_path, hub_factory) as w:
        yield w


async def _void(c: HubClient, receipt_number: int) -> None:
    await c.request(
        "void_sale", receipt_number=receipt_number, approval=MANAGER | {"reason": "customer changed mind"}
    )


# ---------------------------------------------------------------------------------- sales and voids


@pytest.mark.parametrize(
    ("kind", "api"), [("biotrack-rest", "2024"), ("biotrack-rest", "2022"), ("biotrack-2014", "2024")]
)
async def test_sales_voids_and_refunds_exactly_once_through_outage_and_lost_answers(
    kind: str, api: str, nursery: trio.Nursery, tmp_path: Path, hub_factory: Callable[..., Any]
) -> None:
    async with biotrack_world(kind, nursery, tmp_path, hub_factory, api=api) as w:
        licence = w.hub.config.store.licence
        tags = [barcode for barcode, _, _ in STOCK]
        sold: dict[str, str] = {}  # hub receipt number -> barcode
        receipts: list[int] = []
        with trio.fail_after(30):
            async with connect(ws_url(w.hub)) as c:
                await ready(c)
                # an outage: the registers keep selling, nothing reaches the state
                await w.admin.set_faults(outage=True)
                for i in range(6):
                    t0 = trio.current_time()
                    paid = await sell(c, w.adult, tags[i % len(tags)])
                    assert trio.current_time() - t0 < 2.0  # the register never waits for the state
                    sold[f"{licence}-{paid['receipt_number']}"] = tags[i % len(tags)]
                    receipts.append(paid["receipt_number"])
                await trio.sleep(0.4)
                assert await w.sales() == []
                # every entry waits (an attempt caught in flight settles as pending or unknown)
                with trio.fail_after(5):
                    while not all(e.state in ("pending", "unknown") for e in w.outbox()):
                        assert not any(e.state in ("sent", "dead") for e in w.outbox())
                        await trio.sleep(0.02)
                # back, but every third request is applied and its answer lost
                await w.admin.set_faults(outage=False, drop_every=3)
                for i in range(6):
                    paid = await sell(c, w.adult, tags[i % len(tags)])
                    sold[f"{licence}-{paid['receipt_number']}"] = tags[i % len(tags)]
                    receipts.append(paid["receipt_number"])
                voided = [receipts[1], receipts[8]]  # one sold in the outage, one after
                for number in voided:
                    await _void(c, number)
                # a refund whose answer is lost: one unit of a sale of two
                await w.wait_drained(20)
                refunded_tag = tags[0]
                two = await sell(c, w.adult, refunded_tag, quantity=2)
                sold[f"{licence}-{two['receipt_number']}"] = refunded_tag
                await w.wait_drained(20)
                await w.admin.set_faults(drop_every=1, drop_methods=["POST"])
                await c.request(
                    "return_items",
                    receipt_number=two["receipt_number"],
                    lines={"1": 1},
                    approval=MANAGER | {"reason": "sealed unit, unopened"},
                )
                with trio.fail_after(10):
                    while (await w.admin.faults())["counters"]["dropped"] == 0:
                        await trio.sleep(0.05)
                await w.admin.clear_faults()
            await w.wait_drained(20)
        sales = await w.sales()
        counts = Counter(w.number_of(s) for s in sales)
        assert set(counts) == set(sold) and set(counts.values()) == {1}, counts
        two_key = f"{licence}-{two['receipt_number']}"
        for s in sales:
            quantity = 2.0 if w.number_of(s) == two_key else 1.0
            assert [(i["barcode"], i["quantity"]) for i in s["items"]] == [(sold[w.number_of(s)], quantity)]
            assert s["api"] == ("rest" if kind == "biotrack-rest" else "2014")
            assert s["voided"] == (w.number_of(s) in {f"{licence}-{n}" for n in voided})
            # the refund landed once, on its own sale
            assert [r["quantity"] for r in s["refunded"]] == ([1.0] if w.number_of(s) == two_key else [])
        # the state's inventory moved exactly as the hub sold it: sold minus voided minus refunded
        for barcode, _, units in STOCK:
            net = sum(2 if n == two_key else 1 for n, t in sold.items() if t == barcode) - sum(
                1 for n in voided if sold[f"{licence}-{n}"] == barcode
            )
            refunded = 1 if barcode == refunded_tag else 0
            assert await w.state_quantity(barcode) == units - net + refunded
            # the hub quarantines a returned unit instead of putting it back on sale
            assert inventory.package(w.hub.store, barcode).quantity == units - net  # type: ignore[union-attr]
        assert Counter(e.kind for e in w.outbox()) == {"sale": 13, "void": 2, "return": 1}
        assert all(e.state == "sent" for e in w.outbox())
        assert w.hub.metrics.state_errors.labels(licence, "outcome_unknown")._value.get() >= 2
        # the gauge is set at the end of the actor's pass, just after the last entry is stored as sent
        with trio.fail_after(5):
            while w.hub.metrics.state_backlog.labels(licence)._value.get() != 0:
                await trio.sleep(0.02)
        assert w.hub.metrics.state_backlog.labels(licence)._value.get() == 0


# ---------------------------------------------------------------------------------- returns (REST)


async def test_rest_return_is_refunded_once_when_its_answer_is_lost(rest_world: World) -> None:
    w = rest_world
    barcode = STOCK[0][0]
    with trio.fail_after(20):
        async with connect(ws_url(w.hub)) as c:
            await ready(c)
            paid = await sell(c, w.adult, barcode, quantity=2)
            await w.wait_drained()
            # the refund is applied, then its answer lost: the hub must look, not refund twice
            await w.admin.set_faults(drop_every=1, drop_methods=["POST"])
            await c.request(
                "return_items",
                receipt_number=paid["receipt_number"],
                lines={"1": 1},
                approval=MANAGER | {"reason": "sealed unit, unopened"},
            )
            with trio.fail_after(10):
                while not (await w.admin.faults())["counters"]["dropped"]:
                    await trio.sleep(0.05)
            await w.admin.clear_faults()
            await w.wait_drained()
    [sale] = await w.sales()
    assert sale["refunded"] == [{"barcode": barcode, "quantity": 1.0, "price": pytest.approx(12.0)}]
    assert await w.state_quantity(barcode) == STOCK[0][2] - 1
    [ret] = [e for e in w.outbox() if e.kind == "return"]
    assert ret.state == "sent" and ret.state_ref == str(sale["transaction_id"])


# ---------------------------------------------------------------------------------- receiving (2024 API)


async def test_rest_2024_receives_a_transfer_with_a_short_and_a_missing_line(rest_world: World) -> None:
    w = rest_world
    gelato, gummies = (b for b, *_ in sbx.BIOTRACK_INBOUND)
    with trio.fail_after(20):
        async with connect(ws_url(w.hub)) as c:
            token = await ready(c, drawer=False)
        async with w.rest(token) as http:
            listed = (await http.get("/api/state/manifests")).json()
            [m] = [m for m in listed if m["manifest"] == "BT-0000501"]
            assert [(ln["label"], ln["unit"], ln["shipped"]) for ln in m["lines"]] == [
                (gelato, "Grams", 226.796),
                (gummies, "Each", 24.0),
            ]
            assert m["state_received_at"] is None
            # the receive call (2024: PUT) is applied at the state and its answer lost; the hub checks
            await w.admin.set_faults(drop_every=1, drop_methods=["PUT"])
            resp = await http.post(
                "/api/state/manifests/BT-0000501/receive",
                json={
                    "lines": [
                        {
                            "label": gelato,
                            "status": "short",
                            "received_quantity": 200.5,
                            "reason": "bag weighs light",
                            "product_id": "FLW-B14",
                        }
                    ]
                },
            )
            # the state applied the receive and its answer was lost
            assert (await w.admin.faults())["counters"]["dropped"] == 1
            await w.admin.clear_faults()
            assert resp.status_code == 200, resp.text
            report = resp.json()
            assert [(ln["label"], ln["status"], ln["received"]) for ln in report["lines"]] == [
                (gelato, "short", 200.5),
                (gummies, "missing", 0.0),
            ]
            assert report["discrepancies"] == 2
            # the lost answer was settled by reading the state's transfer list, not by receiving twice
            assert "Received in BioTrack through its API" in report["state_steps"][0]
            assert "already recorded there" in report["state_steps"][0]
            again = await http.post("/api/state/manifests/BT-0000501/receive", json={"lines": []})
            assert again.status_code == 400 and again.json()["code"] == "conflict"
            shown = (await http.get("/api/state/manifests/BT-0000501")).json()
            assert shown["state_received_at"] and shown["state_agrees"] is True
            printed = (await http.get("/api/state/manifests/BT-0000501/report")).text
            assert "State records agree." in printed
    state = await w.admin.state()
    lines = {p["label"]: p for p in state["delivery_packages"] if p["label"] in (gelato, gummies)}
    assert (lines[gelato]["state"], lines[gelato]["received_quantity"]) == ("Accepted", 200.5)
    assert (lines[gummies]["state"], lines[gummies]["reason"]) == ("Rejected", "Missing")
    assert await w.state_quantity(gelato) == 200.5
    pkg = inventory.package(w.hub.store, gelato)
    assert pkg is not None and pkg.quantity == 200_500 and pkg.product_id == "FLW-B14"  # mg
    assert inventory.package(w.hub.store, gummies) is None


async def test_rest_receive_while_the_state_is_down_commits_nothing(rest_world: World) -> None:
    """Nothing is received locally unless the state took it; a receipt someone already made in BioTrack
    is kept there, ours is committed beside it and the manifest says the two differ."""
    w = rest_world
    gelato, _ = (b for b, *_ in sbx.BIOTRACK_INBOUND)
    scans = {"lines": [{"label": gelato, "product_id": "FLW-B14"}]}
    with trio.fail_after(20):
        async with connect(ws_url(w.hub)) as c:
            token = await ready(c, drawer=False)
        async with w.rest(token) as http:
            await http.get("/api/state/manifests")
            await w.admin.set_faults(outage=True)
            down = await http.post("/api/state/manifests/BT-0000501/receive", json=scans)
            assert down.status_code == 400 and down.json()["code"] == "state_unavailable"
            assert "nothing was received" in down.json()["message"]
            assert inventory.package(w.hub.store, gelato) is None
            shown = (await http.get("/api/state/manifests/BT-0000501?refresh=0")).json()
            assert shown["report"] is None
            await w.admin.clear_faults()
            # meanwhile a person received it in BioTrack, rejecting everything
            delivery = next(
                d
                for d in (await w.admin.state())["deliveries"]
                if d["recipient_license"] == sbx.BIOTRACK_LICENSE
            )
            await w.admin.receive_delivery(delivery["id"], [])
            done = await http.post("/api/state/manifests/BT-0000501/receive", json=scans)
            assert done.status_code == 200, done.text
            assert "already recorded there" in done.json()["state_steps"][0]
            shown = (await http.get("/api/state/manifests/BT-0000501")).json()
            assert shown["state_agrees"] is False
            assert "STATE RECORDS DIFFER" in (await http.get("/api/state/manifests/BT-0000501/report")).text
    assert inventory.package(w.hub.store, gelato) is not None


# ---------------------------------------------------------------------------------- the card lookup


async def test_card_limit_reads_as_a_patient_status(rest_world: World) -> None:
    from hub.state_channel.biotrack import OUNCE_G
    from hub.state_channel.feature import channel_of

    reader = channel_of(rest_world.hub.services).reader
    with trio.fail_after(10):
        card = await reader.patient_status("NM-0000101")
        assert card is not None and card.active is True
        assert card.flower_ounces_available * OUNCE_G == pytest.approx(230.0)
        assert card.thc_ounces_available * OUNCE_G == pytest.approx(230.0 * 0.2)  # 200 mg THC a unit
        lapsed = await reader.patient_status("NM-0000102")
        assert lapsed is not None and lapsed.active is False
        assert await reader.patient_status("NM-9999999") is None


async def test_medical_check_in_uses_the_card_limit(
    nursery: trio.Nursery, tmp_path: Path, hub_factory: Callable[..., Any]
) -> None:
    """A store whose jurisdiction asks the state registry (Michigan's rules file) on BioTrack REST: the
    card's remaining limit is the stricter figure, and a lapsed card is refused."""
    from datetime import UTC, datetime, timedelta

    from hub.client import ClientError

    async with biotrack_world("biotrack-rest", nursery, tmp_path, hub_factory, jurisdiction="MI") as w:
        w.sandbox.store.db.execute(
            "INSERT INTO bt_cards VALUES ('NM-0000301', 'key-301', 1, 2.5, ?)",
            ((datetime.now(UTC) + timedelta(days=90)).date().isoformat(),),
        )
        expiry = (datetime.now(UTC) + timedelta(days=200)).date().isoformat()
        customer = w.hub.services.demo.store.customer("medical").id_scan
        flower = next(b for b, p, _ in STOCK if p == "PRE-001")  # 1 g
        with trio.fail_after(20):
            async with connect(ws_url(w.hub)) as c:
                await ready(c, drawer=False)
                await c.request("scan", data=customer)
                res = await c.request(
                    "set_customer_type",
                    customer_type="medical",
                    registration_number="NM-0000301",
                    registration_expiry=expiry,
                )
                assert res["allowed"] is True
                snap = await c.wait_snapshot(lambda s: s["customer"] and s["customer"]["type"] == "medical")
                gauge = next(g for g in snap["state"]["allotment"] if g["bucket"] == "total")
                assert gauge["remaining"] == 2_500  # mg: BioTrack's 2.5 g, under Michigan's 2.5 oz
                await c.request("add_package", tag=flower, quantity=2)
                with pytest.raises(ClientError) as e:
                    await c.request("add_package", tag=flower)
                assert e.value.code == "over_limit"
                await c.request("end_customer")
                await c.request("scan", data=customer)
                refused = await c.request(
                    "set_customer_type",
                    customer_type="medical",
                    registration_number="NM-0000102",
                    registration_expiry=expiry,
                )
                assert refused["allowed"] is False


# ---------------------------------------------------------------------------------- reconciliation


async def test_rest_reconciliation_finds_a_planted_discrepancy_and_the_adjustment_lands(
    rest_world: World,
) -> None:
    w = rest_world
    barcode, product_id, units = STOCK[1]
    await w.admin.upsert_packages(
        [
            {
                "license": sbx.BIOTRACK_LICENSE,
                "label": barcode,
                "item_name": "planted",
                "category": "Usable",
                "unit": "Each",
                "quantity": units + 3,
            }
        ]
    )
    with trio.fail_after(20):
        async with connect(ws_url(w.hub)) as c:
            token = await ready(c, drawer=False)
        async with w.rest(token) as http:
            reasons = (await http.get("/api/state/adjust-reasons")).json()
            assert "Inventory Audit" in {r["name"] for r in reasons}
            rec = (await http.post("/api/state/reconciliations")).json()
            [found] = [d for d in rec["discrepancies"] if d["label"] == barcode]
            assert (found["kind"], found["unit"], found["local"], found["state"]) == (
                "quantity",
                "Each",
                units,
                units + 3,
            )
            # the hub's other barcodes agree with the state's
            assert not [
                d
                for d in rec["discrepancies"]
                if d["label"] in {b for b, *_ in STOCK} and d["label"] != barcode
            ]
            adj = await http.post(
                f"/api/state/reconciliations/{rec['id']}/adjust",
                json={"label": barcode, "reason": "Inventory Audit", "note": "shelf count"},
            )
            assert adj.status_code == 200, adj.text
        await w.wait_drained()
    assert await w.state_quantity(barcode) == units
    [row] = [a for a in (await w.admin.state())["adjustments"] if a["label"] == barcode]
    assert (row["reason"], row["quantity"]) == ("Inventory Audit", units)


def test_the_rest_flavour_comes_from_the_config() -> None:
    from hub.state_channel.biotrack import rest_endpoint

    assert rest_endpoint("https://bt.example/api", "2024") == ("https://bt.example/api", "2024")
    assert rest_endpoint("https://bt.example/api#2024") == ("https://bt.example/api", "2024")
    assert rest_endpoint("https://v3.api.nm.trace.biotrackthc.net/") == (
        "https://v3.api.nm.trace.biotrackthc.net/",
        "2022",
    )
    with pytest.raises(ValueError, match="2019"):
        rest_endpoint("https://bt.example#2019")
