"""Labels and lab results at work: the facts of a package for the jurisdiction's label template, printing
on a register's label printer, and pulling a package's lab result from the state system where it offers
one (Metrc ``GET /labtests/v2/results``)."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import trio

from drivers.state_errors import StateError
from hub.domain.catalog import Package, Product, format_grams
from hub.domain.devices import PrintZpl
from hub.domain.lab_results import LabResult, from_metrc
from hub.domain.labels import LabelFacts, LabelKind, label_text, potency, render_zpl
from hub.errors import NotFound
from hub.sale import inventory as inv
from hub.sale.context import Refused, ctx_of
from hub.store.env import put
from hub.store.keys import text

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("hub.labels")
_jobs = itertools.count(1)
LAB_TIMEOUT = 10.0


def lab_result(hub: Hub, tag: str) -> LabResult | None:
    return hub.store.get("lab_results", text(tag), LabResult)


def coa_url(product: Product, result: LabResult | None) -> str:
    if result is not None and result.coa_url:
        return result.coa_url
    return product.coa_ref if product.coa_ref.startswith(("http://", "https://")) else ""


def facts_for(hub: Hub, pkg: Package, product: Product) -> LabelFacts:
    result = lab_result(hub, pkg.tag)
    thc_bp = result.thc_bp if result is not None and result.thc_bp is not None else product.thc_bp
    cbd_bp = result.cbd_bp if result is not None and result.cbd_bp is not None else product.cbd_bp
    thc, cbd = potency(thc_bp, cbd_bp, product.thc_mg_per_unit, product.cbd_mg_per_unit)
    if product.sold_by == "weight":
        net = f"{format_grams(pkg.quantity)} g"
    elif product.limits.net_weight_mg:
        net = f"{format_grams(product.limits.net_weight_mg)} g"
    else:
        net = "1 unit"
    cfg = hub.config.store
    return LabelFacts(
        product=product.name,
        brand=product.brand,
        category=product.category,
        package_tag=pkg.tag,
        licence=cfg.licence,
        store_name=cfg.name,
        net_weight=net,
        thc=thc,
        cbd=cbd,
        packaged_on=pkg.packaged_on,
        harvested_on=pkg.harvested_on,
        coa_url=coa_url(product, result),
        price=f"${product.price_cents // 100}.{product.price_cents % 100:02d}"
        + (" / g" if product.sold_by == "weight" else ""),
        shelf_location=product.shelf_location,
    )


def package_and_product(hub: Hub, tag: str) -> tuple[Package, Product]:
    pkg = inv.package(hub.store, tag.strip())
    product = inv.product(hub.store, pkg.product_id) if pkg else None
    if pkg is None or product is None:
        raise NotFound("This package tag is not in the store's inventory.", code="unknown_package")
    return pkg, product


def preview(hub: Hub, tag: str, kind: LabelKind) -> dict[str, Any]:
    pkg, product = package_and_product(hub, tag)
    j = ctx_of(hub).jurisdiction
    facts = facts_for(hub, pkg, product)
    t = label_text(j.label, facts, kind)
    return {
        "tag": pkg.tag,
        "kind": kind,
        "jurisdiction": j.code,
        "lines": [{"field": f, "text": v} for f, v in t.lines],
        "missing": t.missing,
        "qr": facts.coa_url,
        "zpl": render_zpl(j.label, facts, kind).decode(),
        "source": j.label.source,
    }


def label_printer_of(hub: Hub, register_id: str) -> str:
    devices = hub.services.devices
    if devices is None:
        return ""
    reg = hub.config.register(register_id)
    return (reg.label_printer if reg else "") or next(
        (d for d, r in devices.paired.items() if r == register_id and devices.kinds[d] == "label_printer"), ""
    )


async def print_label(
    hub: Hub, register_id: str, tag: str, kind: LabelKind, copies: int = 1
) -> dict[str, Any]:

    devices = hub.services.devices
    printer_id = label_printer_of(hub, register_id)
    inbox = devices.inboxes.get(printer_id) if devices is not None else None
    if inbox is None:
        raise Refused("No label printer is connected to this register.", code="no_label_printer")
    pkg, product = package_and_product(hub, tag)
    j = ctx_of(hub).jurisdiction
    zpl = render_zpl(j.label, facts_for(hub, pkg, product), kind, copies=copies)
    job_id = f"{kind}-label-{pkg.tag}-{next(_jobs)}"
    await inbox.send(PrintZpl(job_id=job_id, zpl=zpl))
    return {
        "job_id": job_id,
        "printer": printer_id,
        "missing": label_text(j.label, facts_for(hub, pkg, product), kind).missing,
    }


async def pull_lab_result(hub: Hub, tag: str) -> LabResult | None:
    """Ask the state system for the package's lab result (Metrc only: BioTrack's retail API has no such
    read) and keep it; None when the state has none. Unreachable: the stored one stays."""
    ch = hub.services.state_channel
    reader = getattr(ch, "reader", None)
    if reader is None or not hasattr(reader, "lab_test_results"):
        return lab_result(hub, tag)
    pkg, product = package_and_product(hub, tag)
    try:
        with trio.fail_after(LAB_TIMEOUT):
            state_pkg = await reader.package(pkg.tag)
            rows = await reader.lab_test_results(state_pkg.id) if state_pkg is not None else []
    except (trio.TooSlowError, StateError, OSError) as exc:
        log.info("lab results for %s not fetched: %s", pkg.tag, exc)
        return lab_result(hub, tag)
    result = from_metrc(pkg.tag, rows, fetched_at=datetime.now(UTC), coa_url=coa_url(product, None))
    if result is None:
        return lab_result(hub, tag)
    store = hub.store

    def fn(txn: Any) -> None:
        put(txn, store, "lab_results", text(pkg.tag), result)

    await hub.writer.write(fn, label="lab")
    return result
