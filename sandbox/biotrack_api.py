"""BioTrack, as the hub meets it: the 2014 JSON-RPC (``serverjson.asp``) and the 2022/2024 REST shapes.

Mounted under ``/biotrack``: ``POST /biotrack/serverjson.asp`` (JSON-RPC), ``/biotrack/v1/...`` (REST).

Idempotency: a REST ``RequestID`` repeated by the same licence is answered with the reply stored for the
first request and applies nothing again. The 2014 ``nonce`` is one request's: a repeated nonce is refused
(applies nothing), and the answer to an earlier request is fetched with the separate ``nonce_replay``
action, as OpenTHC's client does it. ``inventory_adjust`` takes the package's new quantity (the 2014 example
sends the remaining amount, "0.000000"); the REST adjust takes the same.

Shapes follow ``reference/state-api-documented-shapes.md`` Part T. Almost all of it is **inferred** from
OpenTHC's open-source adapters and mocks, not from BioTrack ([I] below):

- 2014 ([I] ``openthc/cre-adapter`` ``lib/BioTrack.php``, mock ``openthc/bunk`` ``lib/BioTrack2014``): the
  envelope, ``sale_dispense`` with a *unit* ``price`` string, ``nonce_replay`` (its answer is shown nowhere:
  here, the original answer; an unknown nonce is ``success: 0``). Errors as HTTP 200 ``success: 0`` [C].
- 2022 ([I] mock ``lib/Module/BioTrack2022.php``, ``openthc/pos``): ``{"Session": …}`` on login, a medical
  sale with ``PatientCardKey``, a patient lookup with string ``CardExpiration`` parts and one ``Privileges``
  string, an empty ``CardID`` for an unknown card. Sale reads and voids are not public: the sandbox's own.
- 2024 ([I] mock ``lib/Module/BioTrack2024.php``, ``lib/BioTrack2024/Sale*.php``): ``{"session": …}``,
  ``Location`` an integer, a sale answer ``{"Inventory", "Sale": [...], "SessionTime", "TransactionID"}`` whose
  sale id is ``Sale[0].TransactionID``, lists as objects (``{"NextCursor", "NextTransactionID", "Sale"}``),
  ``Deleted`` on a voided sale, and ``PUT`` for void, adjust and receive. The request bodies are not in the
  mock: the names here follow its sale object.

The flavour of a REST session is the login route it came from (``/v1/login`` 2022, ``/v1/user/login`` 2024),
kept in the session token.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from datetime import UTC, date, datetime
from typing import Any

from sandbox.http import Refusal, Reply, Request, Router
from sandbox.store import SandboxStore, iso_z, utc_now

SESSION_SECONDS = 3600.0
ADJUST_TYPES = {
    1: "Inventory Audit",
    2: "Theft",
    3: "Seizure by Law Enforcement",
    4: "Correction",
    5: "Moisture Loss",
    6: "Depletion",
}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
EPSILON = 1e-9


def _rpc_error(code: int, text: str) -> Reply:
    # BioTrack carries logical errors in an HTTP 200.
    return Reply(200, {"success": 0, "errorcode": code, "error": text})


def _rest_error(status: int, text: str) -> Reply:
    return Reply(status, {"Error": text})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class BioTrackApi:
    def __init__(self, store: SandboxStore) -> None:
        self.store = store
        self.session_seconds = SESSION_SECONDS

    def routes(self, router: Router) -> None:
        r = router.add
        r("POST", "/biotrack/serverjson.asp", self.rpc)
        r("GET", "/biotrack/heartbeat", lambda req: Reply(200, {"Status": "OK"}))
        r("POST", "/biotrack/v1/login", self.rest_login)
        r("POST", "/biotrack/v1/user/login", self.rest_login)
        r("POST", "/biotrack/v1/dispense", self.rest_dispense)
        r("POST", "/biotrack/v1/sale", self.rest_dispense)
        r("GET", "/biotrack/v1/sale", self.rest_sale_search)
        r("GET", "/biotrack/v1/sale/{id}", self.rest_sale_get)
        r("POST", "/biotrack/v1/sale/{id}/void", self.rest_sale_void)
        r("PUT", "/biotrack/v1/sale/{id}/void", self.rest_sale_void)
        r("POST", "/biotrack/v1/sale/{id}/refund", self.rest_sale_refund)
        r("POST", "/biotrack/v1/patient/lookup", self.rest_patient_lookup)
        r("GET", "/biotrack/v1/inventory", self.rest_inventory)
        r("POST", "/biotrack/v1/inventory/adjust", self.rest_adjust)
        r("PUT", "/biotrack/v1/inventory/adjust", self.rest_adjust)
        r("GET", "/biotrack/v1/inventory/adjustment/type", self.rest_adjust_types)
        r("GET", "/biotrack/v1/inventory/transfer/inbound", self.rest_inbound)
        r("POST", "/biotrack/v1/inventory/transfer/{id}/receive", self.rest_receive)
        r("PUT", "/biotrack/v1/inventory/transfer/{id}/receive", self.rest_receive)

    # -- sessions ----------------------------------------------------------------------------------------

    def _new_session(self, license: str, username: str, flavour: str = "2014") -> str:
        token = f"{flavour}.{secrets.token_hex(16)}"
        self.store.db.execute(
            "INSERT INTO bt_sessions VALUES (?, ?, ?, ?)",
            (token, license, username, time.time() + self.session_seconds),
        )
        return token

    def _session(self, token: str | None) -> str | None:
        """The licence a live session belongs to."""
        if not token:
            return None
        row = self.store.one("SELECT * FROM bt_sessions WHERE token = ?", token)
        if row is None or row["expires_at"] < time.time():
            return None
        return str(row["license"])

    @staticmethod
    def _flavour(req: Request) -> str:
        """2022 or 2024: the login route the request's session came from (kept in its token)."""
        return "2024" if (req.bearer() or "").startswith("2024.") else "2022"

    def expire_sessions(self) -> int:
        return self.store.db.execute("UPDATE bt_sessions SET expires_at = 0").rowcount

    def _remember(self, key: str, reply: Reply) -> Reply:
        self.store.db.execute(
            "INSERT OR REPLACE INTO bt_replies VALUES (?, ?)", (key, json.dumps(reply.body))
        )
        return reply

    def _replay(self, key: str) -> Reply | None:
        row = self.store.one("SELECT reply FROM bt_replies WHERE key = ?", key)
        return Reply(200, json.loads(row["reply"])) if row else None

    def _sync(self, license: str, obj: str, ref: str) -> int:
        cur = self.store.db.execute(
            "INSERT INTO bt_sync (license, object, ref) VALUES (?, ?, ?)", (license, obj, ref)
        )
        return int(cur.lastrowid or 0)

    # -- shared sale logic -------------------------------------------------------------------------------

    def _apply_sale(
        self,
        license: str,
        api: str,
        items: list[tuple[str, float, float]],
        *,
        sale_time: str,
        sale_type: str,
        terminal_id: str | None,
        card_id: str | None,
        external_id: str | None,
        request_id: str | None,
        nonce: str | None,
    ) -> tuple[int | None, str | None]:
        """(transaction id, None) or (None, error). Applies nothing on error."""
        if not items:
            return None, "No items were given."
        card = None
        if sale_type == "MEDICAL":
            card = self.store.one("SELECT * FROM bt_cards WHERE card_id = ?", card_id or "")
            if card is None or not card["active"] or card["expires"] < date.today().isoformat():
                return None, f"Card {card_id} is not active."
        planned: dict[int, float] = {}
        grams_flower = 0.0
        for barcode, qty, price in items:
            pkg = self.store.one("SELECT * FROM packages WHERE label = ? AND license = ?", barcode, license)
            if pkg is None:
                return None, f"Inventory item {barcode} was not found at this location."
            if pkg["finished_date"] is not None:
                return None, f"Inventory item {barcode} is no longer active."
            if qty <= 0:
                return None, f"Quantity for {barcode} must be greater than zero."
            if price < 0:
                return None, f"Price for {barcode} must not be negative."
            left = planned.get(pkg["id"], pkg["quantity"]) - qty
            if left < -EPSILON:
                return (
                    None,
                    f"Inventory item {barcode} has {pkg['quantity']:g} remaining; cannot dispense {qty:g}.",
                )
            planned[pkg["id"]] = left
            if pkg["unit"] == "Grams":
                grams_flower += qty
        if card is not None and grams_flower > card["limit_g"] + EPSILON:
            return (
                None,
                f"Card {card_id} has {card['limit_g']:g} g remaining; the sale needs {grams_flower:g} g.",
            )
        now = iso_z(utc_now())
        for package_id, left in planned.items():
            self.store.db.execute(
                "UPDATE packages SET quantity = ?, last_modified = ? WHERE id = ?",
                (round(max(0.0, left), 6), now, package_id),
            )
        if card is not None:
            self.store.db.execute(
                "UPDATE bt_cards SET limit_g = limit_g - ? WHERE card_id = ?", (grams_flower, card["card_id"])
            )
        transaction_id = self.store.bump("bt_transaction", 1) + 70_000
        seq = self._sync(license, "sale", str(transaction_id))
        for barcode, _, _ in items:
            self._sync(license, "inventory", barcode)
        self.store.db.execute(
            "INSERT INTO bt_sales (transaction_id, license, api, terminal_id, sale_time, sale_type, card_id, "
            "external_id, request_id, nonce, items, sync_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                transaction_id,
                license,
                api,
                terminal_id,
                sale_time,
                sale_type,
                card_id,
                external_id,
                request_id,
                nonce,
                json.dumps([{"barcode": b, "quantity": q, "price": p} for b, q, p in items]),
                seq,
            ),
        )
        return transaction_id, None

    def _void(self, license: str, transaction_id: int) -> str | None:
        sale = self.store.one(
            "SELECT * FROM bt_sales WHERE transaction_id = ? AND license = ?", transaction_id, license
        )
        if sale is None:
            return f"Transaction {transaction_id} was not found."
        if sale["voided"]:
            return f"Transaction {transaction_id} has already been voided."
        refunded = {(r["barcode"]): r["quantity"] for r in json.loads(sale["refunded"])}
        for item in json.loads(sale["items"]):
            back = item["quantity"] - refunded.get(item["barcode"], 0.0)
            self._restock(license, item["barcode"], back)
        self.store.db.execute("UPDATE bt_sales SET voided = 1 WHERE transaction_id = ?", (transaction_id,))
        self._sync(license, "sale", str(transaction_id))
        return None

    def _refund(self, license: str, transaction_id: int, items: list[tuple[str, float, float]]) -> str | None:
        sale = self.store.one(
            "SELECT * FROM bt_sales WHERE transaction_id = ? AND license = ?", transaction_id, license
        )
        if sale is None:
            return f"Transaction {transaction_id} was not found."
        if sale["voided"]:
            return f"Transaction {transaction_id} has been voided."
        sold: dict[str, float] = {}
        for item in json.loads(sale["items"]):
            sold[item["barcode"]] = sold.get(item["barcode"], 0.0) + item["quantity"]
        refunded = json.loads(sale["refunded"])
        done: dict[str, float] = {}
        for r in refunded:
            done[r["barcode"]] = done.get(r["barcode"], 0.0) + r["quantity"]
        for barcode, qty, _ in items:
            if barcode not in sold:
                return f"Item {barcode} is not part of transaction {transaction_id}."
            if qty <= 0 or done.get(barcode, 0.0) + qty > sold[barcode] + EPSILON:
                return f"Refund quantity for {barcode} exceeds what was sold."
            done[barcode] = done.get(barcode, 0.0) + qty
        for barcode, qty, price in items:
            self._restock(license, barcode, qty)
            refunded.append({"barcode": barcode, "quantity": qty, "price": price})
        self.store.db.execute(
            "UPDATE bt_sales SET refunded = ? WHERE transaction_id = ?",
            (json.dumps(refunded), transaction_id),
        )
        self._sync(license, "sale", str(transaction_id))
        return None

    def _restock(self, license: str, barcode: str, qty: float) -> None:
        self.store.db.execute(
            "UPDATE packages SET quantity = quantity + ?, last_modified = ? WHERE label = ? AND license = ?",
            (qty, iso_z(utc_now()), barcode, license),
        )
        self._sync(license, "inventory", barcode)

    def _adjust(self, license: str, barcode: str, quantity: float, kind: int, reason: str) -> str | None:
        if kind not in ADJUST_TYPES:
            return f"Adjustment type {kind} is not valid; use one of {sorted(ADJUST_TYPES)}."
        if not reason:
            return "A reason is required for an inventory adjustment."
        if quantity < 0:
            return "The new quantity cannot be below zero."
        pkg = self.store.one("SELECT * FROM packages WHERE label = ? AND license = ?", barcode, license)
        if pkg is None:
            return f"Inventory item {barcode} was not found at this location."
        self.store.db.execute(
            "UPDATE packages SET quantity = ?, last_modified = ? WHERE id = ?",
            (quantity, iso_z(utc_now()), pkg["id"]),
        )
        self.store.db.execute(
            "INSERT INTO adjustments (license, label, quantity, unit, reason, adjustment_date, note, mode, "
            "recorded_at, recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?, 'set', ?, 'biotrack')",
            (
                license,
                barcode,
                quantity,
                pkg["unit"],
                ADJUST_TYPES[kind],
                date.today().isoformat(),
                reason,
                iso_z(utc_now()),
            ),
        )
        self._sync(license, "inventory", barcode)
        self._sync(license, "inventory_adjust", barcode)
        return None

    # -- 2014 JSON-RPC -----------------------------------------------------------------------------------

    def rpc(self, req: Request) -> Reply:
        try:
            body = json.loads(req.body or b"null")
        except ValueError:
            return _rpc_error(1, "Invalid JSON.")
        if not isinstance(body, dict) or not isinstance(body.get("action"), str):
            return _rpc_error(1, "No action was specified.")
        action = body["action"]
        with self.store.transaction():
            if action == "login":
                row = self.store.one(
                    "SELECT * FROM bt_users WHERE license = ? AND username = ? AND password = ?",
                    str(body.get("license_number", "")),
                    body.get("username"),
                    body.get("password"),
                )
                if row is None:
                    return _rpc_error(10, "Invalid username, password or license number.")
                return Reply(
                    200,
                    {
                        "success": 1,
                        "sessionid": self._new_session(row["license"], row["username"]),
                        "time": int(time.time()),
                    },
                )
            license = self._session(body.get("sessionid"))
            if license is None:
                return _rpc_error(12, "Your session has expired. Please log in again.")
            if action == "nonce_replay":
                # [I] openthc/cre-adapter nonce_replay(): the answer to an earlier request by its nonce
                earlier = self._replay(f"nonce:{license}:{body.get('nonce')}")
                return earlier or _rpc_error(40, f"Nonce {body.get('nonce')!r} was not found.")
            nonce = body.get("nonce")
            key = f"nonce:{license}:{nonce}" if nonce else None
            if key is not None and self._replay(key) is not None:
                # a nonce names one request: using it again applies nothing ([I]; ask with nonce_replay)
                return _rpc_error(41, f"Nonce {nonce!r} has already been used.")
            reply = self._rpc_action(license, action, body, nonce)
            if key is not None and reply.body.get("success") == 1:
                self._remember(key, reply)
            return reply

    def _rpc_items(self, data: Any) -> list[tuple[str, float, float]] | str:
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            return "data must be a list of items."
        items = []
        for item in data:
            try:
                items.append((str(item["barcodeid"]), float(item["quantity"]), float(item["price"])))
            except (KeyError, TypeError, ValueError):
                return "Each item needs barcodeid, quantity and price."
        return items

    def _rpc_action(self, license: str, action: str, body: dict[str, Any], nonce: str | None) -> Reply:
        if action == "sale_dispense":
            items = self._rpc_items(body.get("data"))
            if isinstance(items, str):
                return _rpc_error(30, items)
            sale_time = body.get("sale_time")
            if not isinstance(sale_time, int):
                return _rpc_error(30, "sale_time must be a unix timestamp.")
            tid, err = self._apply_sale(
                license,
                "2014",
                items,
                sale_time=iso_z(datetime.fromtimestamp(sale_time, UTC)),
                sale_type="MEDICAL" if body.get("card_id") else "RECREATIONAL",
                terminal_id=str(body.get("terminal_id") or ""),
                card_id=body.get("card_id"),
                external_id=None,
                request_id=None,
                nonce=nonce,
            )
            if err:
                return _rpc_error(31, err)
            return Reply(200, {"success": 1, "transactionid": str(tid), "sessiontime": int(time.time())})
        if action == "sale_void":
            err = self._void(license, int(body.get("transactionid") or 0))
            return _rpc_error(32, err) if err else Reply(200, {"success": 1})
        if action == "sale_refund":
            items = self._rpc_items(body.get("data"))
            if isinstance(items, str):
                return _rpc_error(30, items)
            err = self._refund(license, int(body.get("transactionid") or 0), items)
            return _rpc_error(33, err) if err else Reply(200, {"success": 1})
        if action == "inventory_adjust":
            data = body.get("data")
            rows = data if isinstance(data, list) else [data]
            for row in rows:
                try:
                    barcode = str(row["barcodeid"])
                    quantity = float(row["quantity"])
                    kind = int(row["type"])
                except (KeyError, TypeError, ValueError):
                    return _rpc_error(30, "Each adjustment needs barcodeid, quantity and type.")
                err = self._adjust(license, barcode, quantity, kind, str(row.get("reason") or ""))
                if err:
                    raise Refusal(_rpc_error(34, err))
            return Reply(200, {"success": 1})
        if action == "sync_check":
            row = self.store.one("SELECT MAX(seq) AS seq FROM bt_sync WHERE license = ?", license)
            return Reply(200, {"success": 1, "transactionid": int(row["seq"] or 0) if row else 0})
        if action.startswith("sync_"):
            return self._rpc_sync(license, action.removeprefix("sync_"), body)
        return _rpc_error(2, f"Unsupported action {action!r}.")

    def _rpc_sync(self, license: str, obj: str, body: dict[str, Any]) -> Reply:
        start = int(body.get("transaction_start") or 0)
        end = body.get("transaction_end")
        sql = "SELECT ref, MAX(seq) AS seq FROM bt_sync WHERE license = ? AND object = ? AND seq > ?"
        args: list[Any] = [license, obj, start]
        if end is not None:
            sql += " AND seq <= ?"
            args.append(int(end))
        changed = self.store.all(sql + " GROUP BY ref ORDER BY seq", *args)
        if obj == "inventory":
            out = []
            for row in changed:
                pkg = self.store.one(
                    "SELECT p.*, i.name FROM packages p JOIN items i ON i.id = p.item_id "
                    "WHERE p.label = ? AND p.license = ?",
                    row["ref"],
                    license,
                )
                if pkg:
                    out.append(
                        {
                            "id": pkg["label"],
                            "productname": pkg["name"],
                            "remaining_quantity": f"{pkg['quantity']:.6f}",
                            "uom": "g" if pkg["unit"] == "Grams" else "ea",
                            "transactionid": row["seq"],
                            "deleted": 1 if pkg["finished_date"] else 0,
                        }
                    )
            return Reply(200, {"success": 1, "inventory": out})
        if obj == "sale":
            # [I] the rows of openthc/bunk's sync/sale.php: one per item, numbers as strings,
            # ``transactionid`` the sync counter and ``transactionid_original`` the sale
            out = []
            for row in changed:
                sale = self.store.one("SELECT * FROM bt_sales WHERE transaction_id = ?", int(row["ref"]))
                if sale:
                    for n, item in enumerate(json.loads(sale["items"])):
                        out.append(
                            {
                                "deleted": "1" if sale["voided"] else "0",
                                "inventoryid": item["barcode"],
                                "itemnumber": str(n),
                                "location": license,
                                "price": f"{item['price']:.2f}",
                                "quantity": f"{item['quantity']:g}",
                                "sessiontime": int(time.time()),
                                "transactionid": str(row["seq"]),
                                "transactionid_original": str(sale["transaction_id"]),
                                "terminal_id": sale["terminal_id"] or "",
                            }
                        )
            return Reply(200, {"success": 1, "sale": out})
        return _rpc_error(2, f"Unsupported sync object {obj!r}.")

    @staticmethod
    def _sale_json(sale: Any) -> dict[str, Any]:
        return {
            "TransactionID": sale["transaction_id"],
            "RequestID": sale["request_id"],
            "ExternalID": sale["external_id"],
            "Nonce": sale["nonce"],
            "Type": sale["sale_type"],
            "Datetime": sale["sale_time"],
            "CardID": sale["card_id"],
            "Voided": bool(sale["voided"]),
            "Items": json.loads(sale["items"]),
            "Refunded": json.loads(sale["refunded"]),
        }

    @staticmethod
    def _sale_2024(sale: Any) -> dict[str, Any]:
        """[I] the 2024 sale object (openthc/bunk lib/BioTrack2024): ``Deleted`` for a voided sale; refunds
        as ``Refund[]`` of sale-like objects (the refund answer adds ``Refund``; where a read shows them is
        not public)."""
        items = [
            {
                "Barcode": i["barcode"],
                "ExternalID": "",
                "FormID": 0,
                "ItemNumber": n,
                "OrderTypeID": 0,
                "Price": i["price"],
                "Quantity": i["quantity"],
                "TaxCollected": {"Excise": 0, "Other": 0},
                "TransactionID": sale["transaction_id"],
                "VoidReason": "",
            }
            for n, i in enumerate(json.loads(sale["items"]))
        ]
        refunds = [
            {
                "TransactionID": sale["transaction_id"],
                "Item": [{"Barcode": r["barcode"], "Quantity": r["quantity"], "Price": r["price"]}],
            }
            for r in json.loads(sale["refunded"])
        ]
        return {
            "CardID": sale["card_id"] or "",
            "CreatedByUserID": 0,
            "CreatedOn": sale["sale_time"],
            "Deleted": bool(sale["voided"]),
            "ExternalID": sale["external_id"] or "",
            "ID": sale["transaction_id"],
            "Item": items,
            "Location": int(sale["license"]) if str(sale["license"]).isdigit() else 0,
            "OrderingPhysician": "",
            "RequestID": sale["request_id"] or "",
            "TransactionID": sale["transaction_id"],
            "Type": sale["sale_type"],
            "UpdatedOn": sale["sale_time"],
            "Refund": refunds,
        }

    # -- 2022/2024 REST ----------------------------------------------------------------------------------

    def _rest_body(self, req: Request) -> Any:
        try:
            return json.loads(req.body or b"null")
        except ValueError:
            return None

    def _rest_license(self, req: Request) -> str | Reply:
        license = self._session(req.bearer())
        if license is None:
            return _rest_error(401, "unauthorized: session missing or expired")
        return license

    def rest_login(self, req: Request) -> Reply:
        body = self._rest_body(req)
        if not isinstance(body, dict):
            return _rest_error(400, "invalid request body")
        with self.store.transaction():
            row = self.store.one(
                "SELECT * FROM bt_users WHERE ubi = ? AND username = ? AND password = ?",
                str(body.get("UBI", "")),
                body.get("Username"),
                body.get("Password"),
            )
            if row is None:
                return _rest_error(401, "invalid credentials")
            if req.path.endswith("/user/login"):  # 2024 ([I] mock): lower-case ``session``
                return Reply(200, {"session": self._new_session(row["license"], row["username"], "2024")})
            return Reply(200, {"Session": self._new_session(row["license"], row["username"], "2022")})

    def rest_dispense(self, req: Request) -> Reply:
        license = self._rest_license(req)
        if isinstance(license, Reply):
            return license
        body = self._rest_body(req)
        if not isinstance(body, dict):
            return _rest_error(400, "invalid request body")
        flavour = self._flavour(req)
        if flavour == "2024":
            if not isinstance(body.get("Location"), int) or isinstance(body.get("Location"), bool):
                return _rest_error(
                    400, "json: cannot unmarshal string into Go struct field Sale.Location of type int"
                )
            location = str(body["Location"])
        else:
            location = str(body.get("LocationLicense") or "")
        if location != license:
            return _rest_error(400, f"LocationLicense {location!r} does not match the session's location")
        request_id = body.get("RequestID")
        if not isinstance(request_id, str) or not request_id:
            return _rest_error(400, "RequestID is required")
        with self.store.transaction():
            replay = self._replay(f"request:{license}:{request_id}")
            if replay is not None:
                return replay
            stamp = body.get("Datetime")
            if not isinstance(stamp, str) or not RFC3339.match(stamp):
                return _rest_error(
                    400, f'parsing time "{stamp}" as "2006-01-02T15:04:05Z07:00": cannot parse as RFC 3339'
                )
            raw_items = body.get("Items", body.get("Item"))
            if not isinstance(raw_items, list):
                return _rest_error(400, "Items is required")
            items = []
            for item in raw_items:
                if not isinstance(item, dict):
                    return _rest_error(400, "each item must be an object")
                for name in ("Price", "Quantity"):
                    if not _number(item.get(name)):
                        return _rest_error(
                            400,
                            f"json: cannot unmarshal {type(item.get(name)).__name__} into Go struct field Item.{name} of type float64",
                        )
                items.append((str(item.get("Barcode")), float(item["Quantity"]), float(item["Price"])))
            sale_type = str(body.get("Type") or ("MEDICAL" if body.get("CardID") else "RECREATIONAL")).upper()
            if sale_type not in ("RECREATIONAL", "MEDICAL"):
                return _rest_error(400, f"Type {sale_type!r} is not valid")
            card_id = body.get("CardID")
            if sale_type == "MEDICAL" and flavour == "2022":
                # [I] 2022: a medical sale names the card by the CardKey the patient lookup answered
                key = body.get("PatientCardKey")
                card = self.store.one("SELECT card_id FROM bt_cards WHERE card_key = ?", key or "")
                if card is None:
                    return _rest_error(400, "PatientCardKey is required for a MEDICAL sale")
                card_id = card["card_id"]
            tid, err = self._apply_sale(
                license,
                "rest",
                items,
                sale_time=iso_z(datetime.fromisoformat(stamp)),
                sale_type=sale_type,
                terminal_id=body.get("TerminalID"),
                card_id=card_id,
                external_id=body.get("ExternalID"),
                request_id=request_id,
                nonce=None,
            )
            if err:
                return _rest_error(400, err)
            if flavour == "2024":
                sale = self.store.one("SELECT * FROM bt_sales WHERE transaction_id = ?", tid)
                # [I] the sale's id is inside Sale[]; the top-level TransactionID is the sync counter
                reply = Reply(
                    200,
                    {
                        "Inventory": [],
                        "Sale": [self._sale_2024(sale)],
                        "SessionTime": int(time.time()),
                        "TransactionID": sale["sync_seq"],
                    },
                )
            else:
                reply = Reply(
                    200, {"TransactionID": tid, "RequestID": request_id, "ExternalID": body.get("ExternalID")}
                )
            return self._remember(f"request:{license}:{request_id}", reply)

    def rest_sale_search(self, req: Request) -> Reply:
        license = self._rest_license(req)
        if isinstance(license, Reply):
            return license
        sql = "SELECT * FROM bt_sales WHERE license = ?"
        args: list[Any] = [license]
        for param, column in (("requestid", "request_id"), ("externalid", "external_id")):
            if param in req.query:
                sql += f" AND {column} = ?"
                args.append(req.query[param])
        rows = self.store.all(sql + " ORDER BY transaction_id", *args)
        if self._flavour(req) == "2024":
            # [I] a list answers an object: {"NextCursor", "NextTransactionID", "Sale": [...]}
            return Reply(
                200, {"NextCursor": 0, "NextTransactionID": 0, "Sale": [self._sale_2024(r) for r in rows]}
            )
        return Reply(200, [self._sale_json(r) for r in rows])

    def rest_sale_get(self, req: Request) -> Reply:
        license = self._rest_license(req)
        if isinstance(license, Reply):
            return license
        sale = self.store.one(
            "SELECT * FROM bt_sales WHERE transaction_id = ? AND license = ?", req.params["id"], license
        )
        if sale is None:
            return _rest_error(404, "sale not found")
        if self._flavour(req) == "2024":
            return Reply(200, {"Sale": self._sale_2024(sale)})
        return Reply(200, self._sale_json(sale))

    def rest_sale_void(self, req: Request) -> Reply:
        license = self._rest_license(req)
        if isinstance(license, Reply):
            return license
        if not req.params["id"].isdigit():
            return _rest_error(404, "sale not found")
        flavour = self._flavour(req)
        if (req.method == "PUT") != (flavour == "2024"):  # 2024: PUT ([I] mock); 2022: the sandbox's POST
            return _rest_error(405, f"method {req.method} not allowed")
        with self.store.transaction():
            err = self._void(license, int(req.params["id"]))
        if err:
            return _rest_error(400, err)
        if flavour == "2024":
            return Reply(200, {"transactionID": int(req.params["id"])})  # [I] as the mock answers
        return Reply(200, {"TransactionID": int(req.params["id"]), "Voided": True})

    def rest_sale_refund(self, req: Request) -> Reply:
        license = self._rest_license(req)
        if isinstance(license, Reply):
            return license
        body = self._rest_body(req)
        raw = body.get("Item", body.get("Items")) if isinstance(body, dict) else None
        if not isinstance(raw, list) or not req.params["id"].isdigit():
            return _rest_error(400, "Item is required")
        try:
            items = [(str(i["Barcode"]), float(i["Quantity"]), float(i.get("Price", 0))) for i in raw]
        except (KeyError, TypeError, ValueError):
            return _rest_error(400, "each item needs Barcode and Quantity")
        with self.store.transaction():
            err = self._refund(license, int(req.params["id"]), items)
        return _rest_error(400, err) if err else Reply(200, {"TransactionID": int(req.params["id"])})

    def rest_patient_lookup(self, req: Request) -> Reply:
        license = self._rest_license(req)
        if isinstance(license, Reply):
            return license
        body = self._rest_body(req)
        card_id = body.get("CardID") if isinstance(body, dict) else None
        card = self.store.one("SELECT * FROM bt_cards WHERE card_id = ?", card_id or "")
        if card is None:
            # [I] openthc/pos Open.php: an empty CardID means the card was not found
            return Reply(200, {"CardActive": False, "Sessiontime": int(time.time()), "CardID": ""})
        y, m, d = card["expires"].split("-")
        active = bool(card["active"]) and card["expires"] >= date.today().isoformat()
        # [I] the sample in openthc/bunk's BioTrack2022 mock: string date parts, one Privileges string
        return Reply(
            200,
            {
                "CardActive": active,
                "Sessiontime": int(time.time()),
                "CardExpiration": {"Year": y, "Month": m, "Day": d},
                "CardLimit": round(max(0.0, card["limit_g"]), 3),
                "Privileges": "Qualified Patient (QP)",
                "CardID": card["card_id"],
                "CardKey": card["card_key"],
            },
        )

    def rest_inventory(self, req: Request) -> Reply:
        license = self._rest_license(req)
        if isinstance(license, Reply):
            return license
        sql = "SELECT p.*, i.name FROM packages p JOIN items i ON i.id = p.item_id WHERE p.license = ?"
        args: list[Any] = [license]
        if "barcode" in req.query:
            sql += " AND p.label = ?"
            args.append(req.query["barcode"])
        rows = self.store.all(sql + " ORDER BY p.label", *args)
        out = [
            {
                "Barcode": r["label"],
                "ProductName": r["name"],
                "Quantity": r["quantity"],
                "UOM": "g" if r["unit"] == "Grams" else "ea",
                "Active": r["finished_date"] is None,
            }
            for r in rows
        ]
        # 2024 lists answer objects ([I]; the key is the sandbox's guess after the mock's ``Inventory``)
        return Reply(200, {"Inventory": out} if self._flavour(req) == "2024" else out)

    def rest_adjust(self, req: Request) -> Reply:
        license = self._rest_license(req)
        if isinstance(license, Reply):
            return license
        if (req.method == "PUT") != (self._flavour(req) == "2024"):  # 2024: PUT ([I] mock)
            return _rest_error(405, f"method {req.method} not allowed")
        body = self._rest_body(req)
        rows = body if isinstance(body, list) else [body]
        with self.store.transaction():
            for row in rows:
                if (
                    not isinstance(row, dict)
                    or not _number(row.get("Quantity"))
                    or not isinstance(row.get("Type"), int)
                ):
                    raise Refusal(
                        _rest_error(400, "each adjustment needs Barcode, numeric Quantity and Type")
                    )
                err = self._adjust(
                    license,
                    str(row.get("Barcode")),
                    float(row["Quantity"]),
                    row["Type"],
                    str(row.get("Reason") or ""),
                )
                if err:
                    raise Refusal(_rest_error(400, err))
        return Reply(200, {"Adjusted": len(rows)})

    def rest_adjust_types(self, req: Request) -> Reply:
        license = self._rest_license(req)
        if isinstance(license, Reply):
            return license
        return Reply(200, [{"ID": k, "Name": v} for k, v in ADJUST_TYPES.items()])

    def rest_inbound(self, req: Request) -> Reply:
        license = self._rest_license(req)
        if isinstance(license, Reply):
            return license
        out = []
        for t in self.store.all(
            "SELECT t.*, d.id AS delivery_id, d.received_at FROM transfers t JOIN deliveries d ON d.transfer_id = t.id "
            "WHERE d.recipient_license = ? ORDER BY t.id",
            license,
        ):
            items = self.store.all(
                "SELECT * FROM delivery_packages WHERE delivery_id = ? ORDER BY id", t["delivery_id"]
            )
            out.append(
                {
                    "TransferID": t["id"],
                    "Manifest": t["manifest_number"],
                    "FromLicense": t["shipper_license"],
                    "FromName": t["shipper_name"],
                    "Received": t["received_at"] is not None,
                    "Item": [
                        {
                            "Barcode": i["label"],
                            "ProductName": i["item_name"],
                            "Quantity": i["shipped_quantity"],
                            "UOM": "g" if i["shipped_unit"] == "Grams" else "ea",
                            "ReceivedQuantity": i["received_quantity"],
                            "Status": i["state"].lower(),
                        }
                        for i in items
                    ],
                }
            )
        # 2024 lists answer objects ([I]; the key is the sandbox's guess)
        return Reply(200, {"Transfer": out} if self._flavour(req) == "2024" else out)

    def rest_receive(self, req: Request) -> Reply:
        license = self._rest_license(req)
        if isinstance(license, Reply):
            return license
        if (req.method == "PUT") != (self._flavour(req) == "2024"):  # 2024: PUT ([I] mock)
            return _rest_error(405, f"method {req.method} not allowed")
        body = self._rest_body(req)
        lines = body.get("Item") if isinstance(body, dict) else None
        if not isinstance(lines, list) or not req.params["id"].isdigit():
            return _rest_error(400, "Item is required")
        with self.store.transaction():
            delivery = self.store.one(
                "SELECT d.*, t.manifest_number, t.shipper_license, t.shipper_name FROM deliveries d "
                "JOIN transfers t ON t.id = d.transfer_id WHERE d.transfer_id = ? AND d.recipient_license = ?",
                int(req.params["id"]),
                license,
            )
            if delivery is None:
                return _rest_error(404, "transfer not found")
            if delivery["received_at"] is not None:
                return _rest_error(400, "transfer has already been received")
            outcome = receive_delivery(
                self.store,
                delivery,
                [
                    (
                        str(i.get("Barcode")),
                        i.get("ReceivedQuantity"),
                        str(i.get("Status", "accepted")),
                        i.get("Reason"),
                    )
                    for i in lines
                    if isinstance(i, dict)
                ],
            )
            if outcome:
                raise Refusal(_rest_error(400, outcome))
        return Reply(200, {"TransferID": int(req.params["id"]), "Received": True})


def receive_delivery(
    store: SandboxStore, delivery: Any, lines: list[tuple[str, Any, str, Any]]
) -> str | None:
    """Receive a delivery as the recipient would (BioTrack 2024 API, or a person in the Metrc UI).

    Each line: (label, received quantity, "accepted"/"rejected", reason). Accepted packages enter the
    recipient's inventory with the received quantity. Returns an error text, or None.
    """
    shipped = {
        r["label"]: r
        for r in store.all("SELECT * FROM delivery_packages WHERE delivery_id = ?", delivery["id"])
    }
    seen = set()
    for label, qty, status, reason in lines:
        row = shipped.get(label)
        if row is None:
            return f"package {label} is not on this manifest"
        status = status.lower()
        if status not in ("accepted", "rejected"):
            return f"status for {label} must be accepted or rejected"
        if status == "accepted" and (not _number(qty) or qty < 0):
            return f"ReceivedQuantity for {label} must be a non-negative number"
        if status == "rejected" and not reason:
            return f"a reason is required to reject {label}"
        seen.add(label)
    now = iso_z(utc_now())
    for label, qty, status, reason in lines:
        row = shipped[label]
        if status.lower() == "accepted":
            store.db.execute(
                "UPDATE delivery_packages SET received_quantity = ?, state = 'Accepted', reason = ? WHERE id = ?",
                (float(qty), reason, row["id"]),
            )
            store.upsert_package(
                delivery["recipient_license"],
                label,
                row["item_name"],
                row["category"],
                row["shipped_unit"],
                float(qty),
            )
            store.db.execute(
                "UPDATE packages SET received_manifest = ?, received_from_license = ?, received_from_name = ?, "
                "received_at = ? WHERE label = ?",
                (
                    delivery["manifest_number"],
                    delivery["shipper_license"],
                    delivery["shipper_name"],
                    now,
                    label,
                ),
            )
            store.db.execute(
                "INSERT INTO bt_sync (license, object, ref) VALUES (?, 'inventory', ?)",
                (delivery["recipient_license"], label),
            )
        else:
            store.db.execute(
                "UPDATE delivery_packages SET received_quantity = 0, state = 'Rejected', reason = ? WHERE id = ?",
                (reason, row["id"]),
            )
    # Lines not mentioned were not in the truck: recorded as rejected (missing).
    for label, row in shipped.items():
        if label not in seen:
            store.db.execute(
                "UPDATE delivery_packages SET received_quantity = 0, state = 'Rejected', reason = 'Missing' WHERE id = ?",
                (row["id"],),
            )
    store.db.execute("UPDATE deliveries SET received_at = ? WHERE id = ?", (now, delivery["id"]))
    store.db.execute("UPDATE transfers SET last_modified = ? WHERE id = ?", (now, delivery["transfer_id"]))
    return None
