"""Back-office REST of the live catalogue: products, scheduled prices, promotions with a preview, imports
with a dry-run diff and a progress bar, labels and lab results, and the Form 8300 worksheet of a cash
flag. Every change needs a manager's session and a reason, and lands in the audit log; labels print from
a register with a budtender's session (the register's own label printer)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import msgspec
import trio
import trio.lowlevel

from hub import audit
from hub.backoffice import cash_flags
from hub.catalogue import labels
from hub.catalogue.live import LiveCatalogue
from hub.domain import form8300
from hub.domain.cart import Cart, CartLine
from hub.domain.catalog import Customer, Product
from hub.domain.import_csv import CsvRowError, changed_fields, iter_packages, iter_products
from hub.domain.pricing import price_cart
from hub.domain.promotions import Promotion, eligible
from hub.domain.receipt import SaleRecord
from hub.errors import BadRequest, NotFound
from hub.http_server import HttpRequest, HttpResponse, RouteTable, require_staff
from hub.sale import inventory as inv
from hub.sale.context import ctx_of, sale_of
from hub.store.keys import u64

if TYPE_CHECKING:
    from hub.app import Hub

# the REST routes this module serves; hub/wiring.py joins it into the hub's table
ROUTES = RouteTable()

IMPORT_CHUNK = 200


def live_of(hub: Hub) -> LiveCatalogue:
    live = hub.services.catalogue
    if live is None:
        raise NotFound("This hub has no live catalogue.")
    return live


def _reason(body: dict[str, Any]) -> str:
    reason = str(body.get("reason", "")).strip()
    if len(reason) < 3:
        raise BadRequest(
            "Say why (a reason of at least 3 characters): it goes in the audit log.", field="reason"
        )
    return reason[:300]


def _tail(req: HttpRequest, prefix: str) -> list[str]:
    return [unquote(p) for p in req.path[len(prefix) :].split("/") if p]


def _q(req: HttpRequest) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(req.query).items()}


def product_row(p: Product) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "brand": p.brand,
        "category": p.category,
        "sold_by": p.sold_by,
        "price_cents": p.price_cents,
        "tax_class": p.tax_class,
        "thc_bp": p.thc_bp,
        "cbd_bp": p.cbd_bp,
        "thc_mg_per_unit": p.thc_mg_per_unit,
        "cbd_mg_per_unit": p.cbd_mg_per_unit,
        "image_url": p.image_url,
        "shelf_location": p.shelf_location,
        "coa_ref": p.coa_ref,
        "active": p.active,
    }


# ---------------------------------------------------------------------------------------------- products
@ROUTES.route("GET", "/api/catalogue/products")
async def products(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    q = _q(req).get("q", "").strip()
    index = ctx_of(hub.services).index
    found = (
        index.search(q, limit=50, include_inactive=True)
        if q
        else sorted(inv.all_products(hub.store), key=lambda p: p.name)[:200]
    )
    return HttpResponse.json({"products": [product_row(p) for p in found]})


@ROUTES.route("GET", "/api/catalogue/products/*")
async def product_detail(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "budtender")
    parts = _tail(req, "/api/catalogue/products/")
    p = inv.product(hub.store, parts[0]) if parts else None
    if p is None:
        raise NotFound("There is no such product.")
    pkgs = [
        {
            "tag": k.tag,
            "quantity": k.quantity,
            "status": k.status,
            "lab_testing": k.lab_testing,
            "packaged_on": k.packaged_on.isoformat() if k.packaged_on else None,
            "lab": msgspec.to_builtins(labels.lab_result(hub, k.tag)),
        }
        for k in inv.packages_of(hub.store, p.id)
    ]
    pending = [
        msgspec.to_builtins(c) for c in live_of(hub).price_changes(pending_only=True) if c.product_id == p.id
    ]
    return HttpResponse.json({"product": product_row(p), "packages": pkgs, "price_changes": pending})


@ROUTES.route("POST", "/api/catalogue/products/*")
async def product_edit(hub: Hub, req: HttpRequest) -> HttpResponse:
    session = require_staff(hub, req, "manager")
    parts = _tail(req, "/api/catalogue/products/")
    body = req.json_object()
    if not parts:
        raise NotFound("Use POST /api/catalogue/products/{id}.")
    changes = body.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise BadRequest("changes: the fields to change and their new values.", field="changes")
    p = await live_of(hub).edit_product(parts[0], changes, staff=session.staff_id, reason=_reason(body))
    return HttpResponse.json({"product": product_row(p)})


# ---------------------------------------------------------------------------------------------- prices
def _when(raw: Any, hub: Hub) -> datetime:
    if not isinstance(raw, str) or not raw:
        raise BadRequest(
            "effective_at: when the price takes effect (ISO date and time).", field="effective_at"
        )
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            "effective_at is written 2026-05-01T09:00 (store time) or with an offset.", field="effective_at"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=hub.config.zone)  # a time without a zone is the store's local time
    return at.astimezone(UTC)


@ROUTES.route("GET", "/api/catalogue/price-changes")
async def price_changes(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    items = sorted(live_of(hub).price_changes(), key=lambda c: c.effective_at, reverse=True)[:200]
    return HttpResponse.json({"price_changes": [msgspec.to_builtins(c) for c in items]})


@ROUTES.route("POST", "/api/catalogue/price-changes")
async def price_change(hub: Hub, req: HttpRequest) -> HttpResponse:
    session = require_staff(hub, req, "manager")
    body = req.json_object()
    price = body.get("price_cents")
    if not isinstance(price, int) or isinstance(price, bool):
        raise BadRequest("price_cents is a whole number of cents.", field="price_cents")
    live = live_of(hub)
    change = await live.schedule_price(
        str(body.get("product_id", "")),
        price,
        _when(body.get("effective_at"), hub),
        staff=session.staff_id,
        reason=_reason(body),
    )
    await live.apply_due()  # a change already due applies now
    return HttpResponse.json({"price_change": msgspec.to_builtins(change)})


# ---------------------------------------------------------------------------------------------- promotions
def _stored_row(s: Any) -> dict[str, Any]:
    return {**msgspec.to_builtins(s), "promotion": msgspec.to_builtins(s.promotion)}


@ROUTES.route("GET", "/api/catalogue/promotions")
async def promotions(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    return HttpResponse.json({"promotions": [_stored_row(s) for s in live_of(hub).stored()]})


@ROUTES.route("POST", "/api/catalogue/promotions")
async def promotion_save(hub: Hub, req: HttpRequest) -> HttpResponse:
    session = require_staff(hub, req, "manager")
    body = req.json_object()
    raw = body.get("promotion")
    if not isinstance(raw, dict):
        raise BadRequest("promotion: the promotion as an object with its kind.", field="promotion")
    position = body.get("position")
    item = await live_of(hub).save_promotion(
        raw,
        active=bool(body.get("active", True)),
        position=position if isinstance(position, int) and not isinstance(position, bool) else None,
        staff=session.staff_id,
        reason=_reason(body),
    )
    return HttpResponse.json({"promotion": _stored_row(item)})


@ROUTES.route("POST", "/api/catalogue/promotions/*")
async def promotion_action(hub: Hub, req: HttpRequest) -> HttpResponse:
    session = require_staff(hub, req, "manager")
    parts = _tail(req, "/api/catalogue/promotions/")
    body = req.json_object()
    if parts == ["preview"]:
        return HttpResponse.json(preview(hub, body))
    if len(parts) == 2 and parts[1] == "delete":
        await live_of(hub).delete_promotion(parts[0], staff=session.staff_id, reason=_reason(body))
        return HttpResponse.json({"deleted": parts[0]})
    raise NotFound("Use POST /api/catalogue/promotions/preview or /{id}/delete.")


def preview(hub: Hub, body: dict[str, Any]) -> dict[str, Any]:
    """What a cart would get: the live promotions, with a draft in place of the one of the same id."""
    live = live_of(hub)
    ctx = ctx_of(hub.services)
    promos: list[Promotion] = list(live.promotions)
    draft = body.get("promotion")
    if isinstance(draft, dict):
        try:
            d = msgspec.convert(draft, Promotion)
        except msgspec.ValidationError as exc:
            raise BadRequest(f"promotion: {exc}", field="promotion") from None
        promos = [p for p in promos if p.id != d.id]
        promos.insert(
            int(body.get("position_index", 0)) if isinstance(body.get("position_index"), int) else 0, d
        )
    codes = [str(c) for c in body.get("codes", []) if isinstance(c, str)]
    groups = [str(g) for g in body.get("groups", []) if isinstance(g, str)]
    lines: list[CartLine] = []
    for i, item in enumerate(body.get("lines", []) or [], 1):
        if not isinstance(item, dict):
            continue
        p = inv.product(hub.store, str(item.get("product_id", "")))
        if p is None:
            raise BadRequest(f"No product {item.get('product_id')!r}.", field="lines")
        qty = int(item.get("quantity", 1) or 1)
        weight = int(item.get("weight_mg", 0) or 0)
        lines.append(
            CartLine(
                line_id=i,
                package_tag=f"preview-{i}",
                product_id=p.id,
                product_name=p.name,
                brand=p.brand,
                category=p.category,
                sold_by=p.sold_by,
                tax_class=p.tax_class,
                is_cannabis=p.is_cannabis,
                unit_price_cents=p.price_cents,
                limits=p.limits,
                quantity=1 if p.sold_by == "weight" else max(qty, 1),
                weight_mg=(weight or 1000) if p.sold_by == "weight" else 0,
            )
        )
    if not lines:
        raise BadRequest("lines: the products of the cart to preview.", field="lines")
    cart = Cart(cart_id="preview", register_id="preview", lines=tuple(lines), promo_codes=tuple(codes))
    local_now = datetime.now(UTC).astimezone(hub.config.zone)
    if isinstance(body.get("at"), str):
        local_now = _when(body["at"], hub).astimezone(hub.config.zone)
    applied = eligible(promos, codes=codes, groups=groups)
    priced = price_cart(cart, ctx.settings.tax_table, local_now=local_now, promotions=applied)
    return {
        "lines": [
            {
                "product_id": ln.product_id,
                "name": ln.product_name,
                "quantity": ln.quantity,
                "base_cents": pl.base_cents,
                "promotion": pl.promotion.name if pl.promotion else None,
                "promotion_id": pl.promotion.promotion_id if pl.promotion else None,
                "promotion_cents": pl.promotion_cents,
                "total_cents": pl.total_cents,
            }
            for ln, pl in zip(lines, priced.lines, strict=True)
        ],
        "subtotal_cents": priced.subtotal_cents,
        "promotion_cents": priced.promotion_cents,
        "total_cents": priced.total_cents,
        "considered": [p.id for p in applied],
    }


# ---------------------------------------------------------------------------------------------- imports
def _parse_import(hub: Hub, body: dict[str, Any]) -> tuple[list[Any], list[Any], list[str], int, int]:
    products_csv = str(body.get("products_csv", "") or "")
    packages_csv = str(body.get("packages_csv", "") or "")
    if not products_csv and not packages_csv:
        raise BadRequest("Give products_csv and/or packages_csv.", field="products_csv")
    known = {p.id: p for p in inv.all_products(hub.store)}
    new_products: list[Any] = []
    packages: list[Any] = []
    which = "products"
    try:
        if products_csv:
            for _, p in iter_products(products_csv):
                new_products.append(p)
                known[p.id] = p
        which = "packages"
        if packages_csv:
            packages = [k for _, k in iter_packages(packages_csv, known)]
    except CsvRowError as exc:
        raise BadRequest(f"{which} file: {exc} — nothing was imported.", field=which) from None
    diff: list[str] = []
    added_products = added_packages = 0
    for p in new_products:
        old = inv.product(hub.store, p.id)
        if old is None:
            added_products += 1
        else:
            diff += [f"product {p.id}: {c}" for c in changed_fields(old, p)]
    for k in packages:
        old_pkg = inv.package(hub.store, k.tag)
        if old_pkg is None:
            added_packages += 1
        else:
            diff += [f"package {k.tag}: {c}" for c in changed_fields(old_pkg, k)]
    return new_products, packages, diff, added_products, added_packages


@ROUTES.route("POST", "/api/catalogue/import")
async def import_catalogue(hub: Hub, req: HttpRequest) -> HttpResponse:
    """``dry_run`` (the default) answers what would be added and changed, writing nothing; ``apply`` with
    ``confirm_changes`` writes in chunks and answers a job id whose progress the page polls."""
    session = require_staff(hub, req, "manager")
    body = req.json_object()
    new_products, packages, diff, added_p, added_k = _parse_import(hub, body)
    summary = {
        "new_products": added_p,
        "new_packages": added_k,
        "changes": diff,
        "products": len(new_products),
        "packages": len(packages),
    }
    if not body.get("apply"):
        return HttpResponse.json({"dry_run": True, **summary})
    if diff and not body.get("confirm_changes"):
        raise BadRequest(
            f"{len(diff)} change(s) to what the store already holds: look at the dry run and confirm them.",
            code="changes_not_confirmed",
        )
    reason = _reason(body)
    live = live_of(hub)
    job = secrets.token_hex(6)
    total = len(new_products) + len(packages)
    live.imports[job] = {"job": job, "done": 0, "total": total, "state": "running", "error": ""}

    async def run() -> None:
        store = hub.store
        items: list[tuple[str, Any]] = [("p", p) for p in new_products] + [("k", k) for k in packages]
        try:
            for start in range(0, len(items), IMPORT_CHUNK):
                chunk = items[start : start + IMPORT_CHUNK]

                def fn(txn: Any, chunk: list[tuple[str, Any]] = chunk) -> None:
                    for kind, item in chunk:
                        if kind == "p":
                            inv.put_product(txn, store, item)
                        else:
                            inv.put_package(txn, store, item)

                await hub.writer.write(fn, label="import")
                for kind, item in chunk:
                    if kind == "p":
                        ctx_of(hub.services).index.upsert(item)
                live.imports[job]["done"] = start + len(chunk)

            def fin(txn: Any) -> None:
                audit.append(
                    txn,
                    store,
                    "catalogue_imported",
                    staff=session.staff_id,
                    detail={
                        "products": len(new_products),
                        "packages": len(packages),
                        "updated": len(diff),
                        "reason": reason,
                        "job": job,
                    },
                )

            await hub.writer.write(fin, label="import")
            live.imports[job]["state"] = "done"
            live.refresh()
        except Exception as exc:  # the job's page shows it; what was written stays (chunks are whole)
            live.imports[job].update(state="failed", error=str(exc))

    if hub.supervisor is None:
        await run()
    else:
        hub.supervisor.start_soon(run)
        await trio.lowlevel.checkpoint()
    return HttpResponse.json({"dry_run": False, "job": job, **summary})


@ROUTES.route("GET", "/api/catalogue/import/*")
async def import_progress(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    parts = _tail(req, "/api/catalogue/import/")
    job = live_of(hub).imports.get(parts[0]) if parts else None
    if job is None:
        raise NotFound("There is no such import.")
    return HttpResponse.json(job)


# ---------------------------------------------------------------------------------------------- labels
@ROUTES.route("GET", "/api/labels/*")
async def label_preview(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "budtender")
    parts = _tail(req, "/api/labels/")
    kind = _q(req).get("kind", "exit")
    if kind not in ("exit", "shelf") or not parts:
        raise BadRequest("GET /api/labels/{tag}?kind=exit|shelf", field="kind")
    return HttpResponse.json(labels.preview(hub, parts[0], kind))  # type: ignore[arg-type]


@ROUTES.route("POST", "/api/labels/print")
async def label_print(hub: Hub, req: HttpRequest) -> HttpResponse:
    """Print on the label printer of the register the session belongs to (or ``register_id`` from the
    back office)."""
    session = require_staff(hub, req, "budtender")
    body = req.json_object()
    kind = body.get("kind", "exit")
    if kind not in ("exit", "shelf"):
        raise BadRequest("kind is exit or shelf.", field="kind")
    register = str(body.get("register_id") or session.register_id)
    copies = body.get("copies", 1)
    if not isinstance(copies, int) or not 1 <= copies <= 20:
        raise BadRequest("copies is 1 to 20.", field="copies")
    out = await labels.print_label(hub, register, str(body.get("tag", "")), kind, copies)
    return HttpResponse.json(out)


@ROUTES.route("POST", "/api/labs/*")
async def lab_pull(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "budtender")
    parts = _tail(req, "/api/labs/")
    if not parts:
        raise NotFound("POST /api/labs/{tag}")
    result = await labels.pull_lab_result(hub, parts[0])
    return HttpResponse.json({"lab": msgspec.to_builtins(result)})


@ROUTES.route("GET", "/api/register/cart")
async def register_cart(hub: Hub, req: HttpRequest) -> HttpResponse:
    """The lines of the session's register cart, for the label button (tags and names only)."""
    session = require_staff(hub, req, "budtender")
    actor = hub.registers.get(session.register_id)
    sale = sale_of(actor) if actor is not None else None
    lines = (
        []
        if sale is None or sale.cart is None
        else [
            {"line_id": ln.line_id, "tag": ln.package_tag, "name": ln.product_name} for ln in sale.cart.lines
        ]
    )
    return HttpResponse.json({"register_id": session.register_id, "lines": lines})


@ROUTES.route("GET", "/api/demo/label-printer")
async def demo_label_printer(hub: Hub, req: HttpRequest) -> HttpResponse:
    """What the demo's simulated label printer has received (the demo only)."""
    require_staff(hub, req, "budtender")
    sims = hub.services.demo.devices
    if sims is None:
        raise NotFound("This hub runs no simulated devices.")
    return HttpResponse(200, bytes(sims.label_printer.received), "text/plain; charset=utf-8")


# ---------------------------------------------------------------------------------------------- Form 8300
@ROUTES.route("GET", "/api/backoffice/cash-flags-8300")
async def flags_with_status(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    now = datetime.now(UTC)
    rows = []
    for s in cash_flags.current_flags(hub.store, hub.config.zone, now):
        status, reason = form8300.status_of(s.reviews)
        rows.append({**cash_flags.flag_row(s), "status": status, "status_reason": reason})
    return HttpResponse.json({"flags": rows})


@ROUTES.route("GET", "/api/backoffice/form8300/*")
async def form_8300(hub: Hub, req: HttpRequest) -> HttpResponse:
    require_staff(hub, req, "manager")
    parts = _tail(req, "/api/backoffice/form8300/")
    flag_id = "/".join(parts)
    now = datetime.now(UTC)
    found = next(
        (s for s in cash_flags.current_flags(hub.store, hub.config.zone, now) if s.flag.flag_id == flag_id),
        None,
    )
    if found is None:
        raise NotFound("There is no such cash flag.")
    flag = found.flag
    sales: list[form8300.CashSale] = []
    for n in flag.receipt_numbers:
        rec = hub.store.get("sales", u64(n), SaleRecord)
        if rec is None:
            continue
        ev = cash_flags.cash_event(rec)
        sales.append(
            form8300.CashSale(
                receipt_number=n,
                at=rec.receipt.sold_at,
                cash_cents=ev.cash_cents if ev else 0,
                items=[ln.name for ln in rec.receipt.lines],
            )
        )
    c = hub.store.get("customers", flag.customer_id.encode(), Customer)
    cfg = hub.config.store
    w = form8300.worksheet(
        flag,
        found.reviews,
        sales=sales,
        store=form8300.StoreFacts(
            name=cfg.name, licence=cfg.licence, address=cfg.address, zone=cfg.time_zone
        ),
        customer=form8300.CustomerFacts(
            customer_id=flag.customer_id,
            family_name=c.family_name if c and c.consent_to_retain else "",
            given_name=c.display_name if c and c.consent_to_retain else "",
            birth_date=c.birth_date if c else None,
            id_issuer=c.residency if c else "",
        ),
    )
    if _q(req).get("format") == "json":
        return HttpResponse.json(w)
    return HttpResponse(200, form8300.render_html(w, flag), "text/html; charset=utf-8")
