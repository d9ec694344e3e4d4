"""What the hub pulls from the state and what it does with it: incoming manifests and receiving them,
the state's active packages, and reconciliation of local quantities against the state's.

Comparisons and reports are plain functions over Structs; the I/O is the client calls around them.
Quantities are compared in the state's unit for the package ("Each", "Grams", …); the hub's own are
integer units or milligrams, converted at this boundary only.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, TypeVar

import lmdb
import msgspec
import trio

from drivers.state_errors import RateLimited, StateUnavailable
from hub import audit
from hub.domain.catalog import Package, Product
from hub.domain.outbox import OutboxEntry
from hub.domain.state_payloads import MG_PER_UNIT, StateAdjustment
from hub.errors import BadRequest, Conflict, NotFound
from hub.sale.inventory import package_in_txn, product_in_txn, put_package
from hub.state_channel import outbox_store
from hub.state_channel.biotrack import unit_name
from hub.store.env import Store, decode, encode, next_seq, put, tget
from hub.store.keys import text, u64
from hub.store.layout import PULL_MARKS

T = TypeVar("T")
EPSILON = 1e-3  # a thousandth of the state's unit (1 mg for grams)


async def patiently(call: Callable[[], Awaitable[T]], *, attempts: int = 8) -> T:
    """A pull that meets 429s waits and goes on (the client already backs off per request); a pull is a
    read, so repeating it is always safe."""
    delay = 0.5
    for i in range(attempts):
        try:
            return await call()
        except RateLimited as exc:
            if i == attempts - 1:
                raise
            await trio.sleep(max(delay, exc.retry_after))
            delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------------- reconciliation


class Discrepancy(msgspec.Struct, kw_only=True):
    label: str
    kind: Literal["quantity", "missing_at_state", "missing_locally"]
    unit: str
    local: float | None
    state: float | None
    product_id: str = ""
    adjusted_by: int = 0  # outbox seq of the adjustment a manager made from it
    reason: str = ""


class Reconciliation(msgspec.Struct, kw_only=True):
    id: int
    licence: str
    facility: str
    at: datetime
    trigger: str  # "manual" | "schedule"
    by: str
    compared: int
    discrepancies: list[Discrepancy]


def local_in_state_unit(pkg: Package, product: Product | None, unit: str) -> float:
    weighed = product is not None and product.sold_by == "weight"
    if not weighed:
        return float(pkg.quantity)
    return pkg.quantity / float(MG_PER_UNIT.get(unit, 1000))


def compare(
    local: dict[str, tuple[Package, Product | None]], state: dict[str, tuple[float, str]]
) -> tuple[int, list[Discrepancy]]:
    """Every package whose quantity differs, with both figures; packages only one side knows."""
    out: list[Discrepancy] = []
    labels = sorted(set(local) | set(state))
    for label in labels:
        loc = local.get(label)
        st = state.get(label)
        if loc is not None and st is not None:
            pkg, product = loc
            qty = local_in_state_unit(pkg, product, st[1])
            if abs(qty - st[0]) > EPSILON:
                out.append(
                    Discrepancy(
                        label=label,
                        kind="quantity",
                        unit=st[1],
                        local=round(qty, 6),
                        state=st[0],
                        product_id=pkg.product_id,
                    )
                )
        elif loc is not None:
            pkg, product = loc
            unit = "Grams" if product is not None and product.sold_by == "weight" else "Each"
            out.append(
                Discrepancy(
                    label=label,
                    kind="missing_at_state",
                    unit=unit,
                    local=round(local_in_state_unit(pkg, product, unit), 6),
                    state=None,
                    product_id=pkg.product_id,
                )
            )
        elif st is not None:
            out.append(Discrepancy(label=label, kind="missing_locally", unit=st[1], local=None, state=st[0]))
    return len(labels), out


def local_packages(store: Store) -> dict[str, tuple[Package, Product | None]]:
    """Packages the store holds (not finished, something left), with their products."""
    out: dict[str, tuple[Package, Product | None]] = {}
    with store.read() as txn:
        products = {p.id: p for p in (decode(v, Product) for _, v in txn.cursor(db=store.db("products")))}
        for _, raw in txn.cursor(db=store.db("packages")):
            pkg = decode(raw, Package)
            product = products.get(pkg.product_id)
            if pkg.status == "finished" or pkg.quantity <= 0 or (product and not product.is_cannabis):
                continue
            out[pkg.tag] = (pkg, product)
    return out


async def state_packages(client: Any) -> dict[str, tuple[float, str]]:
    pkgs = await patiently(lambda: client.packages_active())
    return {p.label: (float(p.quantity), p.unit_of_measure_name or "Each") for p in pkgs}


async def reconcile(hub: Any, channel: Any, *, trigger: str, by: str) -> Reconciliation:
    state = await state_packages(channel.reader)
    compared, found = compare(local_packages(hub.store), state)
    store = hub.store

    def fn(txn: lmdb.Transaction) -> Reconciliation:
        seq = next_seq(txn, store, "reconciliations")
        rec = Reconciliation(
            id=seq,
            licence=channel.licence,
            facility=channel.facility,
            at=datetime.now(UTC),
            trigger=trigger,
            by=by,
            compared=compared,
            discrepancies=found,
        )
        put(txn, store, "reconciliations", u64(seq), rec)
        audit.append(
            txn,
            store,
            "state_reconciliation",
            staff=by,
            detail={"id": seq, "compared": compared, "discrepancies": len(found), "trigger": trigger},
        )
        return rec

    return await hub.writer.write(fn, label="reconciliation")  # type: ignore[no-any-return]


def reconciliations(store: Store, limit: int = 20) -> list[Reconciliation]:
    out: list[Reconciliation] = []
    with store.read() as txn, txn.cursor(db=store.db("reconciliations")) as cur:
        if cur.last():
            for _, raw in cur.iterprev():
                out.append(decode(raw, Reconciliation))
                if len(out) >= limit:
                    break
    return out


def adjust_from_discrepancy(
    store: Store, channel: Any, rec_id: int, label: str, reason: str, note: str, staff: str
) -> Callable[[lmdb.Transaction], dict[str, Any]]:
    """A manager turns a discrepancy into a state adjustment (local count is what is on the shelf):
    one outbox entry, written with the change to the reconciliation record and an audit entry."""

    def fn(txn: lmdb.Transaction) -> dict[str, Any]:
        rec = tget(txn, store, "reconciliations", u64(rec_id), Reconciliation)
        if rec is None:
            raise NotFound(f"There is no reconciliation {rec_id}.")
        disc = next((d for d in rec.discrepancies if d.label == label), None)
        if disc is None:
            raise NotFound(f"Reconciliation {rec_id} lists no discrepancy for {label}.")
        if disc.adjusted_by:
            raise Conflict(f"{label} was already adjusted (outbox entry {disc.adjusted_by}).")
        if disc.kind != "quantity" or disc.local is None or disc.state is None:
            raise BadRequest(
                f"{label} is {disc.kind.replace('_', ' ')}: that needs a transfer, not an adjustment."
            )
        if not reason:
            raise BadRequest("An adjustment needs a state reason code.", field="reason")
        now = datetime.now(UTC)
        counted = disc.unit == "Each"
        per = float(MG_PER_UNIT.get(disc.unit, 1000))
        if counted:
            delta_units, after_units = round(disc.local - disc.state), round(disc.local)
            delta_mg = after_mg = 0
        else:
            delta_mg, after_mg = round((disc.local - disc.state) * per), round(disc.local * per)
            delta_units = after_units = 0
        adj = StateAdjustment(
            package_label=label,
            unit_of_measure=disc.unit,
            delta_mg=delta_mg,
            delta_units=delta_units,
            resulting_mg=after_mg,
            resulting_units=after_units,
            reason=reason,
            note=note,
            adjusted_at=now,
            store_time_zone=channel.time_zone,
        )
        entry: OutboxEntry = outbox_store.add(
            txn,
            store,
            kind="adjustment",
            licence=channel.licence,
            key=f"adj-{channel.licence}-{rec_id}-{label}",
            payload=encode(adj),
            labels=(label,),
            now=now,
        )
        disc.adjusted_by = entry.seq
        disc.reason = reason
        put(txn, store, "reconciliations", u64(rec_id), rec)
        audit.append(
            txn,
            store,
            "state_adjustment",
            staff=staff,
            detail={
                "reconciliation": rec_id,
                "label": label,
                "reason": reason,
                "note": note,
                "local": disc.local,
                "state": disc.state,
                "unit": disc.unit,
                "outbox": entry.seq,
            },
        )
        return {"outbox_seq": entry.seq, "label": label, "delta": disc.local - disc.state, "unit": disc.unit}

    return fn


# ---------------------------------------------------------------------------------- manifests


class ManifestLine(msgspec.Struct, kw_only=True):
    label: str
    item_name: str
    category: str
    unit: str
    shipped: float
    state_received: float | None = None  # what the state records once received in its UI / API
    state_status: str = ""


class ReceivedLine(msgspec.Struct, kw_only=True):
    label: str
    status: Literal["received", "short", "missing", "damaged"]
    shipped: float
    received: float
    unit: str
    reason: str = ""
    product_id: str = ""


class ReceivingReport(msgspec.Struct, kw_only=True):
    manifest: str
    received_at: datetime
    by: str
    lines: list[ReceivedLine]
    discrepancies: int
    state_steps: list[str]  # what a person still does at the state (Metrc has no receive API)


class Manifest(msgspec.Struct, kw_only=True):
    manifest: str
    transfer_id: int
    delivery_id: int
    shipper_license: str
    shipper_name: str
    estimated_arrival: str
    lines: list[ManifestLine]
    state_received_at: str | None = None
    report: ReceivingReport | None = None
    state_agrees: bool | None = None  # once both sides received: do the state's figures match ours?


def manifest(store: Store, number: str) -> Manifest | None:
    return store.get("manifests", text(number), Manifest)


def manifests(store: Store) -> list[Manifest]:
    with store.read() as txn:
        return [decode(v, Manifest) for _, v in txn.cursor(db=store.db("manifests"))]


async def pull_manifests(hub: Any, channel: Any) -> list[Manifest]:
    """Incoming transfers, their deliveries and packages, kept in ``manifests`` (our report survives)."""
    client = channel.reader
    if hasattr(client, "inbound_transfers"):
        pulled = biotrack_manifests(await patiently(lambda: client.inbound_transfers()))
    else:
        pulled = await _metrc_manifests(client)
    store = hub.store

    def fn(txn: lmdb.Transaction) -> list[Manifest]:
        # new records, the pulled ones left as they came: the writer may run this again (a grown map)
        out = []
        for m in pulled:
            old = tget(txn, store, "manifests", text(m.manifest), Manifest)
            if old is not None:
                received = m.state_received_at
                if old.state_received_at and received:
                    received = old.state_received_at  # first seen, for a state without a time
                m = msgspec.structs.replace(m, report=old.report, state_received_at=received)
            m = msgspec.structs.replace(m, state_agrees=state_agrees(m))
            put(txn, store, "manifests", text(m.manifest), m)
            out.append(m)
        return out

    return await hub.writer.write(fn, label="manifests")  # type: ignore[no-any-return]


async def _metrc_manifests(client: Any) -> list[Manifest]:
    pulled: list[Manifest] = []
    for t in await patiently(lambda: client.incoming_transfers()):
        deliveries = await patiently(partial(client.transfer_deliveries, t.id))
        for d in deliveries:
            pkgs = await patiently(partial(client.delivery_packages, d.id))
            lines = [
                ManifestLine(
                    label=p.package_label or "",
                    item_name=p.item_name or "",
                    category=p.item_category_name or "",
                    unit=p.shipped_unit_of_measure_name or "Each",
                    shipped=float(p.shipped_quantity),
                    state_received=p.received_quantity,
                    state_status=p.shipment_package_state or "",
                )
                for p in pkgs
            ]
            pulled.append(
                Manifest(
                    manifest=t.manifest_number or str(t.id),
                    transfer_id=t.id,
                    delivery_id=d.id,
                    shipper_license=t.shipper_facility_license_number or "",
                    shipper_name=t.shipper_facility_name or "",
                    estimated_arrival=d.estimated_arrival_date_time or "",
                    lines=lines,
                    state_received_at=d.received_date_time,
                )
            )
    return pulled


def biotrack_manifests(transfers: list[Any]) -> list[Manifest]:
    """BioTrack 2024 ``/v1/inventory/transfer/inbound`` (``drivers.biotrack.InboundTransfer``): one transfer
    is one delivery; units ``g``/``ea`` become the hub's unit names; the state says only *whether* it was
    received, so the time is when the hub first saw it so."""

    now = datetime.now(UTC).isoformat(timespec="seconds")
    out = []
    for t in transfers:
        tid = int(t.transfer_id or 0)
        lines = [
            ManifestLine(
                label=i.barcode,
                item_name=i.product_name or "",
                category=i.category or "",
                unit=unit_name(i.uom),
                shipped=float(i.quantity or 0.0),
                state_received=None if i.received_quantity is None else float(i.received_quantity),
                state_status=i.status or "",
            )
            for i in t.item or []
        ]
        out.append(
            Manifest(
                manifest=str(t.manifest or tid),
                transfer_id=tid,
                delivery_id=tid,
                shipper_license=t.from_license or "",
                shipper_name=t.from_name or "",
                estimated_arrival=t.estimated_arrival or "",
                lines=lines,
                state_received_at=now if t.received else None,
            )
        )
    return out


def state_agrees(m: Manifest) -> bool | None:
    """Once the state shows the delivery received, does it agree with our receiving report?"""
    if m.report is None or not m.state_received_at:
        return None
    ours = {ln.label: ln.received for ln in m.report.lines}
    for line in m.lines:
        theirs = line.state_received or 0.0
        if abs(ours.get(line.label, 0.0) - theirs) > EPSILON:
            return False
    return True


def plan_receipt(
    txn: lmdb.Transaction, store: Store, number: str, scans: list[dict[str, Any]]
) -> tuple[Manifest, list[ReceivedLine]]:
    """The technician's count of a delivery, checked and turned into lines; writes nothing. Each scanned
    line is received, short or damaged (with a reason); manifest lines not scanned are missing."""

    m = tget(txn, store, "manifests", text(number), Manifest)
    if m is None:
        raise NotFound(f"There is no incoming manifest {number}; pull the manifests first.")
    if m.report is not None:
        raise Conflict(
            f"Manifest {number} was already received on {m.report.received_at:%Y-%m-%d %H:%M} UTC."
        )
    by_label = {ln.label: ln for ln in m.lines}
    given: dict[str, dict[str, Any]] = {}
    for s in scans:
        label = str(s.get("label", "")).strip()
        if label not in by_label:
            raise BadRequest(f"Package {label} is not on manifest {number}.", field="label")
        if label in given:
            raise BadRequest(f"Package {label} was scanned twice.", field="label")
        given[label] = s
    lines: list[ReceivedLine] = []
    for ml in m.lines:
        got = given.get(ml.label)
        s = got or {}
        status = "missing" if got is None else str(s.get("status", "received"))
        if status not in ("received", "short", "missing", "damaged"):
            raise BadRequest(f"{ml.label}: status must be received, short, missing or damaged.")
        reason = "" if got is None else str(s.get("reason", "")).strip()
        if status == "missing":
            qty, reason = 0.0, reason or "not in the delivery"
        elif status == "received":
            qty = float(s.get("received_quantity", ml.shipped)) if s else ml.shipped
        else:
            raw = s.get("received_quantity") if s else None
            qty = float(raw) if raw is not None else (0.0 if status == "damaged" else -1.0)
            if qty < 0 or (status == "short" and qty >= ml.shipped):
                raise BadRequest(
                    f"{ml.label}: a short line needs the received quantity, below {ml.shipped:g}."
                )
            if not reason:
                raise BadRequest(f"{ml.label}: {status} needs a reason.", field="reason")
        if status == "received" and abs(qty - ml.shipped) > EPSILON:
            status = "short" if qty < ml.shipped else "received"
            if status == "short" and not reason:
                raise BadRequest(f"{ml.label}: fewer than shipped needs a reason.", field="reason")
        accepted = qty if status in ("received", "short") else 0.0
        product_id = "" if got is None else str(s.get("product_id", ""))
        if accepted > 0:
            if not product_id:
                raise BadRequest(f"{ml.label}: which product is it? Give product_id.", field="product_id")
            if product_in_txn(txn, store, product_id) is None:
                raise BadRequest(f"{ml.label}: no product {product_id}.", field="product_id")
            if package_in_txn(txn, store, ml.label) is not None:
                raise Conflict(f"Package {ml.label} is already in the store's inventory.")
        lines.append(
            ReceivedLine(
                label=ml.label,
                status=status,  # type: ignore[arg-type]
                shipped=ml.shipped,
                received=accepted,
                unit=ml.unit,
                reason=reason,
                product_id=product_id,
            )
        )
    return m, lines


def metrc_steps(number: str, lines: list[ReceivedLine]) -> list[str]:
    """Metrc has no API to receive a transfer: what a person does in its UI."""
    steps = [f"In Metrc: Transfers > Incoming > manifest {number} > Receive."]
    for ln in lines:
        if ln.status in ("short", "damaged"):
            steps.append(
                f"  {ln.label}: enter received {ln.received:g} {ln.unit} ({ln.status}: {ln.reason})."
            )
        elif ln.status == "missing":
            steps.append(f"  {ln.label}: reject as not delivered ({ln.reason}).")
    steps.append("The hub checks Metrc on its next pull and marks the manifest when Metrc agrees.")
    return steps


def biotrack_receive_items(lines: list[ReceivedLine]) -> list[dict[str, Any]]:
    """BioTrack 2024 ``/v1/inventory/transfer/{id}/receive`` items, in the state's unit of each line.
    Received and short lines are accepted with what arrived; damaged ones rejected with the reason;
    missing ones are left out, which the state records as missing."""
    items: list[dict[str, Any]] = []
    for ln in lines:
        if ln.status in ("received", "short"):
            item: dict[str, Any] = {
                "Barcode": ln.label,
                "ReceivedQuantity": ln.received,
                "Status": "accepted",
            }
            if ln.reason:
                item["Reason"] = ln.reason
            items.append(item)
        elif ln.status == "damaged":
            items.append(
                {"Barcode": ln.label, "ReceivedQuantity": 0, "Status": "rejected", "Reason": ln.reason}
            )
    return items


def receive(
    store: Store,
    number: str,
    scans: list[dict[str, Any]],
    staff: str,
    *,
    metrc: bool,
    state_steps: list[str] | None = None,
    state_received: bool = False,
) -> Callable[[lmdb.Transaction], ReceivingReport]:
    """Commit the count (``plan_receipt``): accepted quantities enter local inventory as packages, the
    report is kept with the manifest. ``state_received``: the state already took it through its API."""

    def fn(txn: lmdb.Transaction) -> ReceivingReport:
        m, lines = plan_receipt(txn, store, number, scans)
        now = datetime.now(UTC)
        for ln in lines:
            if ln.received <= 0:
                continue
            product = product_in_txn(txn, store, ln.product_id)
            assert product is not None  # plan_receipt checked it in this transaction
            weighed = product.sold_by == "weight"
            quantity = (
                round(ln.received * float(MG_PER_UNIT.get(ln.unit, 1000))) if weighed else round(ln.received)
            )
            put_package(
                txn,
                store,
                Package(
                    tag=ln.label,
                    product_id=ln.product_id,
                    quantity=quantity,
                    status="active",
                    received_at=now,
                    batch=number,
                ),
            )
        steps = list(state_steps or [])
        if metrc:
            steps += metrc_steps(number, lines)
        report = ReceivingReport(
            manifest=number,
            received_at=now,
            by=staff,
            lines=lines,
            discrepancies=sum(1 for ln in lines if ln.status != "received"),
            state_steps=steps,
        )
        m.report = report
        if state_received and not m.state_received_at:
            m.state_received_at = now.isoformat(timespec="seconds")
        put(txn, store, "manifests", text(number), m)
        audit.append(
            txn,
            store,
            "delivery_received",
            staff=staff,
            detail={"manifest": number, "lines": len(lines), "discrepancies": report.discrepancies},
        )
        return report

    return fn


def report_text(m: Manifest) -> str:
    """The printable receiving report."""
    r = m.report
    if r is None:
        return f"Manifest {m.manifest}: not received yet.\n"
    out = [
        f"RECEIVING REPORT  manifest {m.manifest}",
        f"From {m.shipper_name} ({m.shipper_license})",
        f"Received {r.received_at:%Y-%m-%d %H:%M} UTC by {r.by}",
        "",
        f"{'package':26} {'status':9} {'shipped':>10} {'received':>10}  reason",
    ]
    for ln in r.lines:
        out.append(f"{ln.label:26} {ln.status:9} {ln.shipped:>10g} {ln.received:>10g}  {ln.unit} {ln.reason}")
    out += ["", f"Discrepancies: {r.discrepancies}"]
    if m.state_agrees is not None:
        out.append(
            "State records agree." if m.state_agrees else "STATE RECORDS DIFFER: check the state system."
        )
    out += [""] + r.state_steps
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------- the pull schedule


async def pull_packages(hub: Any, channel: Any) -> int:
    """Incremental pull of active packages changed since the last pull (windows of at most 24 h)."""
    mark = ("packages", channel.licence)
    since = PULL_MARKS.read(hub.store, mark)
    started = datetime.now(UTC)
    if since is None:
        pkgs = await patiently(lambda: channel.reader.packages_active())
    else:
        pkgs = await patiently(
            lambda: channel.reader.packages_active(last_modified_start=since, last_modified_end=started)
        )
    for p in pkgs:
        channel.state_view[p.label] = (
            float(p.quantity),
            p.unit_of_measure_name or "Each",
            p.last_modified or "",
        )

    def fn(txn: lmdb.Transaction) -> None:
        PULL_MARKS.put(txn, hub.store, mark, started)

    await hub.writer.write(fn, label="pull")
    return len(pkgs)


async def run_schedule(
    hub: Any, channel: Any, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
) -> None:
    """Pull packages and manifests every few minutes; reconcile once a day (CA: at least every 14/30 days)."""
    task_status.started()
    last_reconcile = 0.0
    while True:
        try:
            await pull_packages(hub, channel)
            await pull_manifests(hub, channel)
            hub.metrics.state_last_pull.labels(channel.licence).set(time.time())
            if trio.current_time() - last_reconcile >= channel.reconcile_every:
                await reconcile(hub, channel, trigger="schedule", by="")
                last_reconcile = trio.current_time()
        except (StateUnavailable, RateLimited) as exc:
            channel.last_pull_error = str(exc)
        except Exception as exc:  # a pull failing must not take the hub down; it shows on the status page
            channel.last_pull_error = f"{type(exc).__name__}: {exc}"
        await trio.sleep(channel.pull_every)
