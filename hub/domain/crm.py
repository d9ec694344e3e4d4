"""The CRM bridge's messages: what the store sends its CRM or loyalty service, in one generic JSON shape,
and two small adapters to the shapes Springbig-style and Alpine IQ-style services take. Pure: no I/O.

Generic shape (``schema = "storehub.crm.v1"``), one JSON object per POST to the configured webhook::

    {"schema": "storehub.crm.v1", "event_id": "C10-0000001-LIC:sale:42", "type": "sale.completed",
     "occurred_at": "2026-05-01T18:30:00Z", "store": {"licence": "…", "name": "…"},
     "customer": {...} | null, "sale": {...} | null}

- ``customer.upserted``: ``customer`` = {id, first_name, last_name, birth_date, phone, email,
  consents {marketing, sms}, points, lifetime_points, groups}. Sent only for customers who consented to
  marketing (Cal. Bus. & Prof. Code §26161.5: no personal information to third parties without consent);
  ``phone`` and ``email`` are present only when the customer consented to be contacted on them. A later
  "no" is sent too (consents false, contact details empty), so the CRM stops contacting them.
- ``message.sms``: ``message`` = {customer_id, to, text}: a text for the service to send. Only ever
  for a customer whose latest answer to the SMS consent is yes, at the number they gave with it.
- ``sale.completed``: ``sale`` = {receipt_number, sold_at, customer_id, subtotal_cents, discount_cents,
  tax_cents, total_cents, points_earned, points_redeemed, lines [{product_id, name, brand, category,
  quantity, weight_mg, total_cents}]}; only for customers as above. Money in integer cents.

Headers, like the store's order API: ``X-Storehub-Timestamp`` (Unix seconds), ``X-Storehub-Signature:
sha256=<hex HMAC-SHA256 of timestamp + "." + body with the shared secret>``, ``X-Storehub-Event`` (the
event id, which is also the ``Idempotency-Key``). A receiver treats a repeated event id as already done;
``GET <webhook>/events/<event_id>`` answering 200 or 404 lets the store ask whether an event whose answer
was lost arrived (the bundled sandbox does; without it the store re-sends and the id deduplicates).
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from hub.domain.signing import HEADER_SIGNATURE, HEADER_TIMESTAMP, signature

SCHEMA = "storehub.crm.v1"
EventType = Literal["customer.upserted", "sale.completed", "message.sms"]
HEADER_EVENT = "x-storehub-event"
STYLES = ("generic", "springbig", "alpineiq")


class CrmCustomer(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    first_name: str
    last_name: str
    birth_date: str
    phone: str
    email: str
    consents: dict[str, bool]
    points: int
    lifetime_points: int
    groups: list[str]


class CrmLine(msgspec.Struct, frozen=True, kw_only=True):
    product_id: str
    name: str
    brand: str
    category: str
    quantity: int
    weight_mg: int
    total_cents: int


class CrmSale(msgspec.Struct, frozen=True, kw_only=True):
    receipt_number: int
    sold_at: str
    customer_id: str
    subtotal_cents: int
    discount_cents: int
    tax_cents: int
    total_cents: int
    points_earned: int
    points_redeemed: int
    lines: list[CrmLine]


class CrmMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A text the store asks the service to send (it owns the SMS sender and the STOP list)."""

    customer_id: str
    to: str
    text: str


class CrmEvent(msgspec.Struct, frozen=True, kw_only=True):
    schema: str
    event_id: str
    type: EventType
    occurred_at: str
    store: dict[str, str]
    customer: CrmCustomer | None = None
    sale: CrmSale | None = None
    message: CrmMessage | None = None


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verify(secret: str, timestamp: str, given: str, body: bytes, now: float, max_skew: int = 300) -> bool:
    """The CRM webhook is signed like the order API (``hub.domain.signing``): HMAC-SHA256 of timestamp + body."""
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    ts = int(timestamp)
    expected = signature(secret, ts, body).encode()
    return abs(now - ts) <= max_skew and hmac.compare_digest(
        expected, given.strip().encode("utf-8", "replace")
    )


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP request to make: a path under the webhook URL, the body and the headers."""

    path: str
    body: bytes
    headers: dict[str, str]


def _signed(
    event_id: str, path: str, payload: Any, secret: str, now: float, extra: dict[str, str]
) -> Request:
    body = msgspec.json.encode(payload)
    ts = int(now)
    headers = {
        "content-type": "application/json",
        HEADER_TIMESTAMP: str(ts),
        HEADER_SIGNATURE: signature(secret, ts, body),
        HEADER_EVENT: event_id,
        "idempotency-key": event_id,
        **extra,
    }
    return Request(path=path, body=body, headers=headers)


# ---- the adapters: the generic event to each service's shape -------------------------------------------


def _dollars(cents: int) -> float:
    return round(cents / 100, 2)


def springbig_style(event: CrmEvent) -> tuple[str, Any]:
    """Springbig-style POS integration: members and visits as Rails nested objects keyed by the POS's
    own ids (``pos_id``), so a repeated post updates rather than duplicates."""
    if event.customer is not None:
        c = event.customer
        return "/members", {
            "member": {
                "pos_id": c.id,
                "first_name": c.first_name,
                "last_name": c.last_name,
                "phone_number": c.phone,
                "email": c.email,
                "birthday": c.birth_date,
                "opt_in_sms": c.consents.get("sms", False),
                "opt_in_email": c.consents.get("marketing", False),
            }
        }
    assert event.sale is not None
    s = event.sale
    return "/visits", {
        "visit": {
            "pos_id": event.event_id,
            "pos_user": s.customer_id,
            "transaction_date": s.sold_at,
            "transaction_total": _dollars(s.total_cents),
            "location": event.store.get("licence", ""),
            "send_notification": False,
            "visit_details_attributes": [
                {
                    "sku": ln.product_id,
                    "name": ln.name,
                    "category": ln.category,
                    "brand": ln.brand,
                    "quantity": ln.quantity if not ln.weight_mg else ln.weight_mg / 1000,
                    "price": _dollars(ln.total_cents),
                }
                for ln in s.lines
            ],
        }
    }


def alpineiq_style(event: CrmEvent) -> tuple[str, Any]:
    """Alpine IQ-style: ``createUpdateMember`` / ``createUpdateSale`` (docs.alpineiq.com, "Transactions
    and refunds API": a ``visit`` with ``pos_id``, ``pos_user``, ``transaction_date`` "YYYY-MM-DD hh:mm:ss
    +0000", ``transaction_total`` and ``visit_details_attributes``); upserts by ``pos_id``/``srcID``."""
    if event.customer is not None:
        c = event.customer
        return "/createUpdateMember", {
            "srcID": c.id,
            "firstName": c.first_name,
            "lastName": c.last_name,
            "mobilePhone": c.phone.removeprefix("+1") if c.phone.startswith("+1") else c.phone,
            "email": c.email,
            "birthday": c.birth_date,
            "loyalty": True,
            "optinSMS": c.consents.get("sms", False),
            "optinEmail": c.consents.get("marketing", False),
        }
    assert event.sale is not None
    s = event.sale
    sold = datetime.fromisoformat(s.sold_at.replace("Z", "+00:00")).astimezone(UTC)
    return "/createUpdateSale", {
        "visit": {
            "pos_id": event.event_id,
            "pos_user": s.customer_id,
            "pos_type": "In-store",
            "transaction_date": sold.strftime("%Y-%m-%d %H:%M:%S +0000"),
            "transaction_total": _dollars(s.total_cents),
            "location": event.store.get("licence", ""),
            "visit_details_attributes": [
                {
                    "sku": ln.product_id,
                    "price": _dollars(ln.total_cents),
                    "quantity": ln.quantity if not ln.weight_mg else ln.weight_mg / 1000,
                    "category": ln.category.upper(),
                    "brand": ln.brand,
                    "name": ln.name,
                }
                for ln in s.lines
            ],
        }
    }


def request_for(event: CrmEvent, *, style: str, secret: str, now: float, api_key: str = "") -> Request:
    """The signed request that carries ``event`` to a service of ``style``."""
    extra = {"x-apikey": api_key} if api_key else {}
    if style == "generic" or event.message is not None:  # texts go in the generic shape to /messages
        if event.message is not None and style != "generic":
            return _signed(event.event_id, "/messages", event, secret, now, extra)
        return _signed(event.event_id, "", event, secret, now, extra)
    if style == "springbig":
        path, payload = springbig_style(event)
    elif style == "alpineiq":
        path, payload = alpineiq_style(event)
    else:
        raise ValueError(f"unknown CRM style {style!r}; one of {', '.join(STYLES)}")
    return _signed(event.event_id, path, payload, secret, now, extra)


def lookup_path(style: str, event_id: str) -> str | None:
    """Where to ask whether an event arrived; None when the service has no such question (then the
    event is re-sent and the service's upsert by id keeps it once)."""
    return f"/events/{event_id}" if style == "generic" else None
