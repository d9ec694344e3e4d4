"""``storehub limits``: check a cart against a jurisdiction's purchase limits, or show the rules.

    storehub limits check --jurisdiction CA --customer adult|adult-nonresident|medical|caregiver|minor-patient
        [--age N] [--state-remaining FILE] [--history FILE] --cart FILE [--at ISO-TIME]
    storehub limits show --jurisdiction XX [--json]

Cart and history files are JSON lists of items::

    {"category": "flower", "net_weight_mg": 3500, "concentrate_mg": 0, "thc_mg": 0, "volume_ml": 0,
     "units": 1, "quantity": 1, "at": "2025-03-01T18:00:00Z"}

Absent amounts mean 0, ``quantity`` defaults to 1, ``units`` defaults to 1 (as in the catalogue's
LimitAttributes: one package is one unit), ``at`` is required on history items and must carry an offset.
``--state-remaining`` is a JSON object ``{bucket: amount}`` in the bucket's unit (see ``show``).

``check`` prints one JSON object ``{"allowed", "remaining", "violations"}`` and exits 0 when allowed, 1 when
refused, 2 on bad input (the reason on stderr). Warnings (unconfirmed figures) go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from hub.domain.items import LimitAttributes
from hub.domain.limits.engine import LimitCustomer, LimitItem, evaluate, format_amount
from hub.domain.limits.rules import CUSTOMER_CLASSES, Jurisdiction, RuleError, load_jurisdiction

EXIT_ALLOWED, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2
_INT_FIELDS = ("net_weight_mg", "concentrate_mg", "thc_mg", "units", "quantity")
_ALL_FIELDS = frozenset((*_INT_FIELDS, "category", "volume_ml", "volume_ul", "at"))


class BadInput(Exception):
    """Input the command cannot use; the message says which file and which item."""


def main(argv: list[str]) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the reason
        return EXIT_BAD_INPUT if exc.code else 0
    try:
        if args.command == "check":
            return _check(args)
        return _show(args)
    except (BadInput, RuleError, ValueError) as exc:
        print(f"limits {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storehub limits", description="Purchase limits: check a cart, show rules."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check a cart against a jurisdiction's limits")
    check.add_argument("--jurisdiction", required=True, help="two-letter code, e.g. CA")
    check.add_argument("--customer", required=True, choices=CUSTOMER_CLASSES)
    check.add_argument("--age", type=int, help="age of the person the purchase is for (age tiers)")
    check.add_argument("--state-remaining", type=Path, help="JSON {bucket: amount} from the state system")
    check.add_argument("--history", type=Path, help="JSON list of past purchases (each with 'at')")
    check.add_argument("--cart", type=Path, required=True, help="JSON list of cart items")
    check.add_argument("--at", help="evaluation time, ISO 8601 with offset (default: now)")
    show = sub.add_parser("show", help="print a jurisdiction's rules with their sources")
    show.add_argument("--jurisdiction", required=True)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


# ------------------------------------------------------------------------------------------------- check


def _check(args: argparse.Namespace) -> int:
    j = load_jurisdiction(args.jurisdiction)
    now = _time(args.at, "--at") if args.at else datetime.now(UTC)
    cart = _items(_load(args.cart), args.cart, history=False)
    history = _items(_load(args.history), args.history, history=True) if args.history else []
    state = (
        _state_remaining(_load(args.state_remaining), args.state_remaining, j)
        if args.state_remaining
        else None
    )
    if args.age is not None and not 0 <= args.age <= 130:
        raise BadInput(f"--age {args.age} is not an age")
    decision = evaluate(
        j,
        LimitCustomer(customer_class=args.customer, age=args.age),
        history,
        cart,
        now,
        state_remaining=state,
    )
    out = {
        "allowed": decision.allowed,
        "remaining": decision.remaining,
        "violations": [
            {"rule": v.rule, "bucket": v.bucket, "limit": v.limit, "amount": v.amount, "message": v.message}
            for v in decision.violations
        ],
    }
    print(json.dumps(out, ensure_ascii=False))
    for warning in decision.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_ALLOWED if decision.allowed else EXIT_REFUSED


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path} is not valid JSON: {exc}") from exc


def _time(text: Any, where: str) -> datetime:
    if not isinstance(text, str):
        raise BadInput(f"{where}: time must be an ISO 8601 string")
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadInput(f"{where}: {text!r} is not an ISO 8601 time") from exc
    if value.tzinfo is None:
        raise BadInput(f"{where}: {text!r} has no UTC offset (add Z or +hh:mm)")
    return value.astimezone(UTC)


def _items(data: Any, path: Path, *, history: bool) -> list[LimitItem]:
    if not isinstance(data, list):
        raise BadInput(f"{path}: expected a JSON list of items")
    items = []
    for n, raw in enumerate(data):
        where = f"{path} item {n}"
        if not isinstance(raw, dict):
            raise BadInput(f"{where}: expected an object")
        unknown = set(raw) - _ALL_FIELDS
        if unknown:
            raise BadInput(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        category = raw.get("category")
        if not isinstance(category, str) or not category:
            raise BadInput(f"{where}: 'category' is required")
        values = {}
        for field in _INT_FIELDS:
            value = raw.get(field, 1 if field in ("units", "quantity") else 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BadInput(f"{where}: {field} must be a whole number >= 0, not {value!r}")
            values[field] = value
        volume_ul = _volume_ul(raw, where)
        at = None
        if history:
            if "at" not in raw:
                raise BadInput(f"{where}: history items need 'at' (when it was bought)")
            at = _time(raw["at"], where)
        elif "at" in raw:
            raise BadInput(f"{where}: cart items have no 'at'")
        quantity = values.pop("quantity")
        attrs = LimitAttributes(category=category, volume_ul=volume_ul, **values)
        items.append(LimitItem(attributes=attrs, quantity=quantity, at=at))
    return items


def _volume_ul(raw: dict[str, Any], where: str) -> int:
    if "volume_ul" in raw:
        value = raw["volume_ul"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadInput(f"{where}: volume_ul must be a whole number >= 0")
        return value
    value = raw.get("volume_ml", 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{where}: volume_ml must be a number")
    try:
        ul = Decimal(str(value)) * 1000  # via str: 0.1 ml is exactly 100 µl, not 100.000000000000005
    except InvalidOperation as exc:
        raise BadInput(f"{where}: volume_ml {value!r} is not a number") from exc
    if ul < 0 or ul != ul.to_integral_value():
        raise BadInput(f"{where}: volume_ml {value!r} must be >= 0 with at most 3 decimals")
    return int(ul)


def _state_remaining(data: Any, path: Path, j: Jurisdiction) -> dict[str, int]:
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a JSON object {{bucket: amount}}")
    out = {}
    for bucket, amount in data.items():
        if bucket not in j.buckets:
            raise BadInput(f"{path}: {j.name} has no bucket {bucket!r} (buckets: {', '.join(j.buckets)})")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise BadInput(f"{path}: {bucket} must be a whole number >= 0 in the bucket's unit")
        out[bucket] = amount
    return out


# -------------------------------------------------------------------------------------------------- show


def _show(args: argparse.Namespace) -> int:
    j = load_jurisdiction(args.jurisdiction)
    if args.json:
        print(json.dumps(_describe(j), ensure_ascii=False, indent=2))
        return 0
    lines = [
        f"{j.name} ({j.code}) purchase limits - time zone {j.timezone.key}",
        "figures CONFIRMED against the cited sources"
        if j.confirmed
        else "figures NOT CONFIRMED: re-verify before relying on them",
    ]
    lines += [f"  warning: {w}" for w in j.warnings]
    lines.append("customers:")
    for policy in j.classes.values():
        state = {
            "none": "",
            "recommended": ", state allotment used when known",
            "required": ", state allotment REQUIRED",
        }
        served = "" if policy.served else " - NOT SERVED"
        note = f": {policy.note}" if policy.note else ""
        lines.append(f"  {policy.id} ({policy.label}){served}{state[policy.state_allotment]}{note}")
    lines.append("buckets:")
    for b in j.buckets.values():
        lines.append(f"  {b.id}: {b.label} [{b.unit}]{' - ' + b.note if b.note else ''}")
        for c in b.contributions:
            factor = "" if c.num == c.den else f" x {c.num}/{c.den}"
            tier = ""
            if c.thc_max_permille is not None:
                tier += f" if THC <= {c.thc_max_permille / 10:g}%"
            if c.thc_min_permille is not None:
                tier += f" if THC > {c.thc_min_permille / 10:g}%"
            lines.append(f"    {', '.join(sorted(c.categories))}: {c.measure}{factor}{tier}")
    lines.append("rules:")
    for r in j.rules:
        b = j.buckets[r.bucket]
        ages = ""
        if r.min_age is not None or r.max_age is not None:
            ages = f" ages {r.min_age if r.min_age is not None else ''}-{r.max_age if r.max_age is not None else ''}"
        lines.append(
            f"  {r.id}: {b.label} <= {format_amount(r.limit * b.scale, b, round_up=False)} ({r.limit_text}) "
            f"{r.window.phrase} for {', '.join(sorted(r.classes))}{ages}"
            + (" [DISPUTED]" if r.disputed else "")
        )
        lines.append(f"      source: {r.source}")
        if r.note:
            lines.append(f"      note: {r.note}")
    lines.append("sources:")
    lines += [f"  {s}" for s in j.sources]
    print("\n".join(lines))
    return 0


def _describe(j: Jurisdiction) -> dict[str, Any]:
    return {
        "code": j.code,
        "name": j.name,
        "timezone": j.timezone.key,
        "confirmed": j.confirmed,
        "warnings": list(j.warnings),
        "classes": [
            {
                "id": c.id,
                "label": c.label,
                "served": c.served,
                "state_allotment": c.state_allotment,
                "note": c.note,
            }
            for c in j.classes.values()
        ],
        "buckets": [
            {
                "id": b.id,
                "label": b.label,
                "unit": b.unit,
                "contributions": [
                    {"categories": sorted(c.categories), "measure": c.measure, "factor": [c.num, c.den]}
                    for c in b.contributions
                ],
            }
            for b in j.buckets.values()
        ],
        "rules": [
            {
                "id": r.id,
                "bucket": r.bucket,
                "classes": sorted(r.classes),
                "limit": r.limit,
                "limit_text": r.limit_text,
                "window": r.window.phrase,
                "min_age": r.min_age,
                "max_age": r.max_age,
                "source": r.source,
                "disputed": r.disputed,
                "note": r.note,
            }
            for r in j.rules
        ],
        "sources": list(j.sources),
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
