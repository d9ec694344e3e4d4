"""Inventory count commands: start a spot check or a full count, record what is on the shelf, finish it into
proposed adjustments, and a manager's approval of those into the state's outbox. The decisions are in
``hub.backoffice.counting``; count sessions stay in the ``counts`` table for the auditors.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import lmdb
import msgspec

from hub import audit
from hub.access import HandlerTable
from hub.backoffice import counting
from hub.backoffice import protocol as bp
from hub.backoffice.records import sales_since, scan_prefix
from hub.commands import Request
from hub.domain.catalog import Package, Product, Refusal
from hub.domain.state_payloads import StateAdjustment
from hub.errors import BadRequest, NotFound
from hub.sale import inventory as inv
from hub.sale.context import refuse
from hub.state_channel import outbox_store
from hub.store.env import Store, decode, encode, put, tget
from hub.store.keys import text

# the commands this module answers; hub/wiring.py joins it into the hub's table
HANDLERS = HandlerTable()


def _weighed(store: Store, product_id: str, cache: dict[str, bool]) -> bool:
    if product_id not in cache:
        product = store.get("products", text(product_id), Product)
        cache[product_id] = product is not None and product.sold_by == "weight"
    return cache[product_id]


def packages_in_scope(store: Store, msg: bp.StartCount) -> tuple[str, list[Package]]:
    if msg.kind == "full":
        with store.read() as txn:
            pkgs = [decode(v, Package) for _, v in scan_prefix(txn, store, "packages", b"")]
        return "all", [p for p in pkgs if p.status != "finished" and p.quantity > 0]
    if msg.tags:
        found = []
        for tag in msg.tags:
            pkg = inv.package(store, tag.strip())
            if pkg is None:
                raise NotFound(f"No package {tag} in the store's records.")
            found.append(pkg)
        return "tags", found
    if msg.product_id:
        return f"product:{msg.product_id}", inv.packages_of(store, msg.product_id)
    if msg.batch:
        with store.read() as txn:
            pkgs = [decode(v, Package) for _, v in scan_prefix(txn, store, "packages", b"")]
        return f"batch:{msg.batch}", [p for p in pkgs if p.batch == msg.batch]
    raise BadRequest("Choose the packages, a batch or a product to spot-check.", field="tags")


def _state_quantities(req: Request, tags: list[str]) -> dict[str, int]:
    """The state's figure per package, when the state channel offers one (services.state_quantity)."""
    lookup = req.hub.services.state_quantity
    if lookup is None:
        return {}
    out = {}
    for tag in tags:
        q = lookup(tag)
        if q is not None:
            out[tag] = q
    return out


def _load(txn: lmdb.Transaction, store: Store, count_id: str) -> counting.CountSession:
    s = tget(txn, store, "counts", text(count_id), counting.CountSession)
    if s is None:
        raise NotFound(f"There is no count {count_id}.")
    return s


def _ok(result: Any) -> Any:
    if isinstance(result, Refusal):
        raise refuse(result)
    return result


@HANDLERS.handles(bp.StartCount, role="technician")
async def start_count(req: Request, msg: bp.StartCount) -> Any:
    store = req.hub.store
    scope, pkgs = packages_in_scope(store, msg)
    cache: dict[str, bool] = {}
    now = datetime.now(UTC)
    count_id = f"C-{now:%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
    session = _ok(
        counting.start_count(
            count_id,
            msg.kind,
            [(p, _weighed(store, p.product_id, cache)) for p in pkgs],
            by=req.staff_id,
            at=now,
            scope=scope,
            state_quantities=_state_quantities(req, [p.tag for p in pkgs]),
        )
    )
    session = msgspec.structs.replace(session, witness=msg.witness)

    def fn(txn: lmdb.Transaction) -> Any:
        put(txn, store, "counts", text(count_id), session)
        audit.append(
            txn,
            store,
            "count_started",
            staff=req.staff_id,
            register=req.register_id,
            detail={"count": count_id, "kind": msg.kind, "scope": scope, "packages": len(session.lines)},
        )
        # the expected figures are the auditors', not the counter's: the reply lists only what to count
        return {
            "count_id": count_id,
            "kind": msg.kind,
            "packages": [
                {"tag": ln.tag, "product_id": ln.product_id, "unit": ln.unit} for ln in session.lines
            ],
        }

    return await req.commit(fn)


@HANDLERS.handles(bp.CountPackage, role="technician")
async def count_package(req: Request, msg: bp.CountPackage) -> Any:
    store = req.hub.store
    now = datetime.now(UTC)

    def fn(txn: lmdb.Transaction) -> Any:
        session = _load(txn, store, msg.count_id)
        updated = _ok(counting.record_count(session, msg.tag.strip(), msg.counted, by=req.staff_id, at=now))
        put(txn, store, "counts", text(msg.count_id), updated)
        left = sum(1 for ln in updated.lines if ln.counted is None)
        return {
            "count_id": msg.count_id,
            "tag": msg.tag,
            "left": left,
            "unknown": list(updated.unknown_scans),
        }

    return await req.commit(fn)


def _sold_since(store: Store, req: Request, session: counting.CountSession) -> dict[str, int]:
    tags = {ln.tag for ln in session.lines}
    sold: dict[str, int] = {}
    for sale in sales_since(store, session.started_at, req.hub.config.zone):
        if sale.voided:
            continue
        for ln in sale.receipt.lines:
            if ln.package_tag in tags:
                qty = ln.weight_mg if ln.sold_by == "weight" else ln.quantity
                sold[ln.package_tag] = sold.get(ln.package_tag, 0) + qty
    return sold


@HANDLERS.handles(bp.FinishCount, role="technician")
async def finish_count(req: Request, msg: bp.FinishCount) -> Any:
    store = req.hub.store
    now = datetime.now(UTC)
    with store.read() as txn:
        first = _load(txn, store, msg.count_id)
    sold = _sold_since(store, req, first)

    def fn(txn: lmdb.Transaction) -> Any:
        session = _load(txn, store, msg.count_id)
        current = {}
        for ln in session.lines:
            pkg = inv.package_in_txn(txn, store, ln.tag)
            if pkg is not None:
                current[ln.tag] = pkg.quantity
        done = _ok(counting.finish_count(session, current, by=req.staff_id, at=now, sold_since=sold))
        put(txn, store, "counts", text(msg.count_id), done)
        audit.append(
            txn,
            store,
            "count_finished",
            staff=req.staff_id,
            register=req.register_id,
            detail={
                "count": msg.count_id,
                "proposals": len(done.proposals),
                "unscanned": len(done.unscanned),
                "unknown": len(done.unknown_scans),
            },
        )
        return count_dict(done)

    return await req.commit(fn)


@HANDLERS.handles(bp.ApproveAdjustments, role="manager")
async def approve_adjustments(req: Request, msg: bp.ApproveAdjustments) -> Any:
    hub = req.hub
    store = hub.store
    now = datetime.now(UTC)
    tz = hub.config.store.time_zone
    licence = hub.config.store.licence

    def fn(txn: lmdb.Transaction) -> Any:
        session = _load(txn, store, msg.count_id)
        updated, chosen = _ok(
            counting.approve(
                session, msg.tags, manager_id=req.staff_id, at=now, reasons=msg.reasons, note=msg.note
            )
        )
        done = []
        for p in chosen:
            pkg = inv.package_in_txn(txn, store, p.tag)
            if pkg is None:
                raise NotFound(f"Package {p.tag} is no longer in the store's records.")
            resulting = pkg.quantity + p.delta
            if resulting < 0:
                raise refuse(Refusal(code="below_zero", message=f"{p.tag} cannot be adjusted below zero."))
            status = pkg.status
            if resulting == 0 and status == "active":
                status = "finished"
            elif resulting > 0 and status == "finished":
                status = "active"
            inv.put_package(txn, store, msgspec.structs.replace(pkg, quantity=resulting, status=status))
            weighed = p.unit == "mg"
            adj = StateAdjustment(
                package_label=p.tag,
                unit_of_measure="Grams" if weighed else "Each",
                delta_mg=p.delta if weighed else 0,
                delta_units=0 if weighed else p.delta,
                resulting_mg=resulting if weighed else 0,
                resulting_units=0 if weighed else resulting,
                reason=p.reason,
                note=(p.note or f"Count {session.count_id}")[:200],
                adjusted_at=now,
                store_time_zone=tz,
            )
            entry = outbox_store.add(
                txn,
                store,
                kind="adjustment",
                licence=licence,
                key=f"adjust-{session.count_id}-{p.tag}",
                payload=encode(adj),
                labels=(p.tag,),
                now=now,
            )
            done.append(msgspec.structs.replace(p, outbox_seq=entry.seq))
            audit.append(
                txn,
                store,
                "inventory_adjustment",
                staff=req.staff_id,
                register=req.register_id,
                detail={
                    "count": session.count_id,
                    "package": p.tag,
                    "delta": p.delta,
                    "unit": p.unit,
                    "resulting": resulting,
                    "reason": p.reason,
                    "outbox": entry.seq,
                },
            )
        by_tag = {p.tag: p for p in done}
        updated = msgspec.structs.replace(
            updated, proposals=tuple(by_tag.get(p.tag, p) for p in updated.proposals)
        )
        put(txn, store, "counts", text(session.count_id), updated)
        return {"count_id": session.count_id, "approved": [msgspec.to_builtins(p) for p in done]}

    return await req.commit(fn)


def count_dict(s: counting.CountSession) -> dict[str, Any]:
    return msgspec.to_builtins(s)  # type: ignore[no-any-return]


def all_counts(store: Store) -> list[counting.CountSession]:
    with store.read() as txn:
        return [decode(v, counting.CountSession) for _, v in scan_prefix(txn, store, "counts", b"")]
