"""HQ's pages and REST/JSON API, as one small ASGI app (served by hypercorn on asyncio).

Every page and API needs a staff login (cookie from ``POST /login``, or HTTP Basic for scripts); setting the
catalogue, prices and promotions needs the merchandiser role. ``/healthz`` and ``/metrics`` are open, as
on the store hub, for the load balancer and Prometheus.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import msgspec
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from hub.hq import catalogue, reports
from hub.hq.auth import COOKIE, Session, allows

if TYPE_CHECKING:
    from hub.hq.service import Headquarters


class Reply(Exception):
    def __init__(
        self,
        status: int,
        body: Any,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ):
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def _json(value: Any, status: int = 200) -> Reply:
    return Reply(status, msgspec.json.encode(value))


def _error(status: int, message: str) -> Reply:
    return _json({"error": message}, status)


class Request:
    def __init__(self, scope: dict[str, Any], body: bytes) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        self.headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        self.body = body
        self.session: Session | None = None

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise _error(400, "the body is not JSON") from None

    def form(self) -> dict[str, str]:
        if self.headers.get("content-type", "").startswith("application/json"):
            data = self.json()
            return {str(k): str(v) for k, v in (data or {}).items()}
        return {k: v[-1] for k, v in parse_qs(self.body.decode()).items()}

    def day(self, name: str) -> date | None:
        raw = self.query.get(name)
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise _error(400, f"{name}: expected YYYY-MM-DD") from None

    @property
    def wants_html(self) -> bool:
        return "text/html" in self.headers.get("accept", "")


Handler = Callable[["Headquarters", Request], Awaitable[Reply]]


class RouteTable:
    """HQ's pages and API, as the store hub's features declare theirs (``hub.http_server.RouteTable``):
    ``@ROUTES.route(method, path, role)``; the role a session needs (None: open to anyone)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[str | None, Handler]] = {}

    def route(self, method: str, path: str, role: str | None = "viewer") -> Callable[[Handler], Handler]:
        def add(fn: Handler) -> Handler:
            if (method, path) in self.routes:
                raise ValueError(f"{method} {path} has two routes")
            self.routes[(method, path)] = (role, fn)
            return fn

        return add

    def find(self, method: str, path: str) -> tuple[str | None, Handler] | None:
        return self.routes.get((method, path))

    def knows(self, path: str) -> bool:
        """Whether some method is served at ``path`` (a wrong method is 405, an unknown path 404)."""
        return any(p == path for _, p in self.routes)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        yield from self.routes


# every page and API route of HQ; ``HqApp`` serves this table
ROUTES = RouteTable()


class HqApp:
    def __init__(self, hq: Headquarters, routes: RouteTable = ROUTES) -> None:
        self.hq = hq
        self.routes = routes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if len(body) > 4 << 20:
                await self._send(send, _error(413, "request too large"))
                return
            if not msg.get("more_body"):
                break
        req = Request(scope, body)
        try:
            found = self.routes.find(req.method, req.path)
            if found is None:
                known = self.routes.knows(req.path)
                raise _error(405 if known else 404, "method not allowed" if known else "not found")
            role, fn = found
            req.session = self.hq.sessions.from_headers(req.headers)
            if role is not None and not allows(req.session, role):
                if req.session is None:
                    if req.method == "GET" and req.wants_html:
                        raise Reply(303, b"", "text/plain", {"location": "/login"})
                    raise _error(401, "Log in first (POST /login, or HTTP Basic).")
                raise _error(403, f"This needs the {role} role.")
            reply = await fn(self.hq, req)
        except Reply as r:
            reply = r
        await self._send(send, reply)

    async def _send(self, send: Any, r: Reply) -> None:
        body = r.body if isinstance(r.body, bytes) else str(r.body).encode()
        headers = [(b"content-type", r.content_type.encode()), (b"content-length", str(len(body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in r.headers.items()]
        headers.append((b"x-content-type-options", b"nosniff"))
        await send({"type": "http.response.start", "status": r.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------------------------------- open


@ROUTES.route("GET", "/healthz", role=None)
async def healthz(hq: Headquarters, req: Request) -> Reply:
    ok = hq.healthy()
    return _json(
        {"ok": ok, "postgres": hq.db_ok, "nats": hq.nats_ok, "chain": hq.config.hq.chain}, 200 if ok else 503
    )


@ROUTES.route("GET", "/metrics", role=None)
async def metrics(hq: Headquarters, req: Request) -> Reply:
    await hq.refresh_metrics()
    return Reply(200, generate_latest(hq.metrics.registry), CONTENT_TYPE_PLAIN_0_0_4)


@ROUTES.route("GET", "/login", role=None)
async def login_page(hq: Headquarters, req: Request) -> Reply:
    return _page(
        "Log in",
        '<form method="post" action="/login"><label>User <input name="user" autocomplete="username"></label> '
        '<label>Password <input name="password" type="password" autocomplete="current-password"></label> '
        "<button>Log in</button></form>",
        hq,
    )


@ROUTES.route("POST", "/login", role=None)
async def login(hq: Headquarters, req: Request) -> Reply:
    form = req.form()
    got = hq.sessions.login(form.get("user", ""), form.get("password", ""))
    if got is None:
        return _error(401, "Wrong user or password (five failures lock the user for five minutes).")
    token, s = got
    secure = "; Secure" if hq.config.http.tls_cert else ""
    cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}"
    if req.headers.get("content-type", "").startswith("application/json"):
        return Reply(
            200, msgspec.json.encode({"user": s.user, "role": s.role}), headers={"set-cookie": cookie}
        )
    return Reply(303, b"", "text/plain", {"location": "/", "set-cookie": cookie})


@ROUTES.route("POST", "/logout")
async def logout(hq: Headquarters, req: Request) -> Reply:
    for part in req.headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            hq.sessions.logout(value)
    return Reply(
        303, b"", "text/plain", {"location": "/login", "set-cookie": f"{COOKIE}=; Max-Age=0; Path=/"}
    )


# ------------------------------------------------------------------------------------------- API


@ROUTES.route("GET", "/api/stores")
async def api_stores(hq: Headquarters, req: Request) -> Reply:
    return _json(await hq.query(reports.stores))


@ROUTES.route("GET", "/api/sales")
async def api_sales(hq: Headquarters, req: Request) -> Reply:
    by_category = req.query.get("by") == "category"
    rows = await hq.query(reports.sales, start=req.day("from"), end=req.day("to"), by_category=by_category)
    return _json(rows)


@ROUTES.route("GET", "/api/z")
async def api_z(hq: Headquarters, req: Request) -> Reply:
    day = req.day("date")
    if day is None:
        raise _error(400, "date: give the store-local business date, YYYY-MM-DD")
    return _json(await hq.query(reports.z_reports, day, req.query.get("store")))


@ROUTES.route("GET", "/api/inventory")
async def api_inventory(hq: Headquarters, req: Request) -> Reply:
    return _json(await hq.query(reports.inventory, req.query.get("store")))


@ROUTES.route("GET", "/api/drawers")
async def api_drawers(hq: Headquarters, req: Request) -> Reply:
    return _json(await hq.query(reports.drawers, start=req.day("from"), end=req.day("to")))


@ROUTES.route("GET", "/api/state-sync")
async def api_state_sync(hq: Headquarters, req: Request) -> Reply:
    return _json(await hq.query(reports.state_sync))


@ROUTES.route("GET", "/api/customers")
async def api_customers(hq: Headquarters, req: Request) -> Reply:
    return _json(await hq.query(reports.customers))


@ROUTES.route("GET", "/api/catalogue")
async def api_catalogue(hq: Headquarters, req: Request) -> Reply:
    async def read(conn: Any) -> dict[str, Any]:
        version = await catalogue.current_version(conn)
        cur = await conn.execute("SELECT scope, product_id, price_cents FROM prices ORDER BY 1, 2")
        prices = [{"scope": s, "product_id": p, "price_cents": c} for s, p, c in await cur.fetchall()]
        cur = await conn.execute("SELECT scope, promotions FROM promotions ORDER BY 1")
        promos = {s: p for s, p in await cur.fetchall()}
        cur = await conn.execute("SELECT product_id FROM catalogue_products ORDER BY 1")
        products = [r[0] for r in await cur.fetchall()]
        return {"version": version, "prices": prices, "promotions": promos, "products": products}

    return _json(await hq.query(read))


async def _change(
    hq: Headquarters, req: Request, fn: Callable[..., Awaitable[int]], *args: Any, **kw: Any
) -> Reply:
    assert req.session is not None
    try:
        version = await hq.query(fn, *args, user=req.session.user, **kw)
    except catalogue.CatalogueError as exc:
        raise _error(400, str(exc)) from None
    published = await hq.publish_catalogue()
    return _json({"version": version, "published": published})


@ROUTES.route("PUT", "/api/catalogue/prices", role="merchandiser")
async def put_prices(hq: Headquarters, req: Request) -> Reply:
    body = req.json() or {}
    prices = body.get("prices")
    if not isinstance(prices, dict):
        raise _error(400, 'prices: expected {"PRODUCT-ID": cents, ...}')
    return await _change(
        hq, req, catalogue.set_prices, str(body.get("scope", "*")), prices, stores=hq.store_ids
    )


@ROUTES.route("PUT", "/api/catalogue/products", role="merchandiser")
async def put_products(hq: Headquarters, req: Request) -> Reply:
    body = req.json() or {}
    products = body.get("products")
    if not isinstance(products, list):
        raise _error(400, "products: expected a list of product definitions")
    return await _change(hq, req, catalogue.set_products, products)


@ROUTES.route("PUT", "/api/catalogue/promotions", role="merchandiser")
async def put_promotions(hq: Headquarters, req: Request) -> Reply:
    body = req.json() or {}
    promos = body.get("promotions")
    if not isinstance(promos, list):
        raise _error(400, "promotions: expected a list of promotions")
    return await _change(
        hq, req, catalogue.set_promotions, str(body.get("scope", "*")), promos, stores=hq.store_ids
    )


# ------------------------------------------------------------------------------------------- pages


def _money(c: int | None) -> str:
    c = int(c or 0)
    sign = "-" if c < 0 else ""
    return f"{sign}${abs(c) // 100:,}.{abs(c) % 100:02d}"


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    if not rows:
        return "<p>Nothing yet.</p>"
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = ""
    for r in rows:
        cells = ""
        for key, _ in columns:
            v = r.get(key)
            text = _money(v) if key.endswith("_cents") else ("" if v is None else str(v))
            cells += f"<td>{html.escape(text)}</td>"
        body += f"<tr>{cells}</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, content: str, hq: Headquarters, session: Session | None = None) -> Reply:
    who = (
        f'<form method="post" action="/logout">{html.escape(session.user)} ({html.escape(session.role)}) '
        "<button>Log out</button></form>"
        if session
        else ""
    )
    name = html.escape(hq.config.hq.name or hq.config.hq.chain)
    doc = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>"
        f"{html.escape(title)} · {name}</title><style>body{{font-family:system-ui,sans-serif;margin:2rem}}"
        "table{border-collapse:collapse;margin-bottom:2rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;"
        "text-align:right}th{background:#f3f3f3}nav a{margin-right:1rem}</style></head><body>"
        f'<header><nav><a href="/">Chain</a><a href="/z">Z reports</a><a href="/inventory">Inventory</a><a href="/catalogue">Catalogue</a></nav>'
        f"{who}</header><h1>{html.escape(title)}</h1>{content}</body></html>"
    )
    return Reply(200, doc.encode(), "text/html; charset=utf-8")


@ROUTES.route("GET", "/")
async def chain_page(hq: Headquarters, req: Request) -> Reply:
    stores = await hq.query(reports.stores)
    sales = await hq.query(reports.sales, start=None, end=None, by_category=False)
    drawers = await hq.query(reports.drawers, start=None, end=None)
    customers = await hq.query(reports.customers)
    content = (
        "<h2>Stores</h2>"
        + _table(
            stores,
            [
                ("store_id", "Store"),
                ("max_seq", "Last event"),
                ("missing", "Missing"),
                ("last_event_at", "Newest event"),
                ("catalogue_version", "Catalogue version"),
                ("state_backlog", "State backlog"),
                ("state_dead_letter", "Dead letters"),
            ],
        )  # fmt: skip
        + "<h2>Sales by store and day</h2>"
        + _table(
            sales,
            [("store_id", "Store"), ("business_date", "Day"), ("sales", "Sales"), ("total_cents", "Total")],
        )
        + "<h2>Drawer variances</h2>"
        + _table(
            drawers,
            [
                ("store_id", "Store"),
                ("business_date", "Day"),
                ("session_id", "Drawer"),
                ("variance_cents", "Variance"),
                ("signed_off", "Signed off"),
            ],
        )  # fmt: skip
        + "<h2>Customers and loyalty</h2>"
        + _table(
            customers,
            [
                ("store_id", "Store"),
                ("customers", "Customers"),
                ("loyalty_earned", "Points earned"),
                ("loyalty_redeemed", "Points redeemed"),
            ],
        )  # fmt: skip
    )
    return _page(f"{hq.config.hq.name or hq.config.hq.chain}: the chain", content, hq, req.session)


@ROUTES.route("GET", "/z")
async def z_page(hq: Headquarters, req: Request) -> Reply:
    day = req.day("date") or date.today()
    rows = await hq.query(reports.z_reports, day, None)
    cols = [("store_id", "Store"), ("sales_count", "Sales"), ("gross_cents", "Gross"), ("discounts_cents", "Discounts"),
            ("tax_cents", "Tax"), ("total_cents", "Total"), ("voids_count", "Voids"), ("returns_cents", "Returns"),
            ("drawer_variance_cents", "Drawer variance")]  # fmt: skip
    form = f'<form><input type="date" name="date" value="{day.isoformat()}"><button>Show</button></form>'
    return _page(f"Z reports, {day.isoformat()}", form + _table(rows, cols), hq, req.session)


@ROUTES.route("GET", "/inventory")
async def inventory_page(hq: Headquarters, req: Request) -> Reply:
    rows = await hq.query(reports.inventory, req.query.get("store"))
    cols = [("store_id", "Store"), ("product_id", "Product"), ("name", "Name"), ("category", "Category"),
            ("units", "Units"), ("weight_mg", "Weight (mg)")]  # fmt: skip
    return _page("Inventory by store and product", _table(rows, cols), hq, req.session)


@ROUTES.route("GET", "/catalogue")
async def catalogue_page(hq: Headquarters, req: Request) -> Reply:
    got = await api_catalogue(hq, req)
    data = msgspec.json.decode(got.body)
    rows = await hq.query(reports.stores)
    running = _table(rows, [("store_id", "Store"), ("catalogue_version", "Version it runs")])
    prices = _table(data["prices"], [("scope", "Scope"), ("product_id", "Product"), ("price_cents", "Price")])
    form = ""
    if allows(req.session, "merchandiser"):
        scopes = "".join(
            f'<option value="{html.escape(s)}">{html.escape(s)}</option>' for s in ["*", *hq.store_ids]
        )
        form = (
            '<h2>Set a price</h2><form method="post" action="/catalogue/price">'
            f'<label>Scope <select name="scope">{scopes}</select></label> '
            '<label>Product <input name="product_id" required></label> '
            '<label>Price (cents) <input name="price_cents" inputmode="numeric" pattern="[0-9]+" required></label> '
            "<button>Publish</button></form><p>Scope * is chain-wide; a store's own price wins over it.</p>"
        )
    content = f"<p>Catalogue version {data['version']}.</p>{running}<h2>Prices</h2>{prices}{form}"
    return _page("Catalogue and prices", content, hq, req.session)


@ROUTES.route("POST", "/catalogue/price", role="merchandiser")
async def catalogue_price_form(hq: Headquarters, req: Request) -> Reply:
    form = req.form()
    raw = form.get("price_cents", "")
    if not raw.isdigit() or not form.get("product_id"):
        raise _error(400, "price_cents: a whole number of cents; product_id: required")
    await _change(
        hq,
        req,
        catalogue.set_prices,
        form.get("scope", "*"),
        {form["product_id"]: int(raw)},
        stores=hq.store_ids,
    )
    return Reply(303, b"", "text/plain", {"location": "/catalogue"})
