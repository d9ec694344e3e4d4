"""The store's tax table and the tax arithmetic, in integer cents.

ROUNDING RULE (also printed on every receipt, see ``ROUNDING_NOTE``): each tax is computed per line and
rounded half up to the cent. Per line rather than per receipt because a void or a partial return must
refund exactly the tax that was charged on the lines given back; with per-receipt rounding a return of one
line out of three could refund a cent more or less than was collected for it.

Exclusive pricing: the shelf price is pre-tax; tax_i = round_half_up(rate_i × base_i), where base_i is the
line price, plus the (already rounded) earlier taxes when tax i ``compounds``.
Inclusive pricing ("out-the-door" prices): the shelf price is what the customer pays; with the effective
multipliers m_i (tax_i = m_i × pre-tax), tax_i = round_half_up(price × m_i / (1 + Σm)) and the pre-tax
amount is the remainder, so the parts always add up to the shelf price.
"""

from __future__ import annotations

from fractions import Fraction

import msgspec

PPM = 1_000_000  # rates in parts per million: 7.25 % = 72_500 ppm, exact for every US rate we know

ROUNDING_NOTE_EXCLUSIVE = "Taxes are computed on each line and rounded half up to the cent."
ROUNDING_NOTE_INCLUSIVE = (
    "Prices include tax. Each tax is computed on each line and rounded half up to the cent; "
    "the pre-tax amount is the remainder."
)


def round_half_up(value: Fraction | int) -> int:
    """Round to the nearest integer, halves away from zero (so a refund mirrors its sale exactly)."""
    value = Fraction(value)
    if value < 0:
        return -round_half_up(-value)
    return int(value + Fraction(1, 2))  # int() truncates toward zero, which is floor for x >= 0


def div_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded as :func:`round_half_up` rounds it (halves away from zero), in
    integers: a Fraction costs microseconds, and every pricing of a discount, promotion or tax asks.
    ``denominator`` > 0."""
    whole, rest = divmod(abs(numerator), denominator)
    whole += 2 * rest >= denominator
    return whole if numerator >= 0 else -whole


class TaxRule(msgspec.Struct, frozen=True, kw_only=True):
    """One tax of the store's table. ``applies_to`` lists tax classes (``Product.tax_class``)."""

    code: str  # stable key: "excise", "state", "local"
    name: str  # as printed on the receipt: "Cannabis excise 10%"
    rate_ppm: int
    applies_to: tuple[str, ...]
    kind: str = "sales"  # excise | sales | local, for reporting
    compounds: bool = False  # base includes the earlier taxes of the table that apply to the line


class TaxTable(msgspec.Struct, frozen=True, kw_only=True):
    rules: tuple[TaxRule, ...]
    prices_include_tax: bool = False
    name: str = ""  # e.g. "Ann Arbor, MI 2025"

    @property
    def rounding_note(self) -> str:
        return ROUNDING_NOTE_INCLUSIVE if self.prices_include_tax else ROUNDING_NOTE_EXCLUSIVE


class TaxAmount(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str
    rate_ppm: int
    amount_cents: int


class LineTax(msgspec.Struct, frozen=True, kw_only=True):
    pretax_cents: int
    taxes: tuple[TaxAmount, ...]
    total_cents: int  # pretax + Σ taxes = what the customer pays for the line

    @property
    def tax_cents(self) -> int:
        return sum(t.amount_cents for t in self.taxes)


def _rules_for(table: TaxTable, tax_class: str) -> list[TaxRule]:
    return [r for r in table.rules if tax_class in r.applies_to]


def tax_line(price_cents: int, tax_class: str, table: TaxTable) -> LineTax:
    """Taxes of one line whose price after all discounts is ``price_cents`` (may be negative for a
    refund: the result then mirrors the sale exactly)."""
    rules = _rules_for(table, tax_class)
    if not table.prices_include_tax:
        taxes: list[TaxAmount] = []
        running = 0
        for rule in rules:
            base = price_cents + (running if rule.compounds else 0)
            amount = div_half_up(base * rule.rate_ppm, PPM)
            running += amount
            taxes.append(
                TaxAmount(code=rule.code, name=rule.name, rate_ppm=rule.rate_ppm, amount_cents=amount)
            )
        return LineTax(pretax_cents=price_cents, taxes=tuple(taxes), total_cents=price_cents + running)

    multipliers: list[Fraction] = []
    for rule in rules:
        rate = Fraction(rule.rate_ppm, PPM)
        multipliers.append(rate * (1 + sum(multipliers)) if rule.compounds else rate)
    factor = 1 + sum(multipliers, Fraction(0))
    shares = [m / factor for m in multipliers]  # exact: the rounding below is the only one
    taxes = [
        TaxAmount(
            code=rule.code,
            name=rule.name,
            rate_ppm=rule.rate_ppm,
            amount_cents=div_half_up(price_cents * share.numerator, share.denominator),
        )
        for rule, share in zip(rules, shares, strict=True)
    ]
    tax_total = sum(t.amount_cents for t in taxes)
    return LineTax(pretax_cents=price_cents - tax_total, taxes=tuple(taxes), total_cents=price_cents)


def sum_taxes(lines: list[tuple[TaxAmount, ...]], table: TaxTable) -> tuple[TaxAmount, ...]:
    """Per-tax totals in table order (each tax listed on the receipt, even when it came to zero)."""
    totals: dict[str, int] = {}
    for taxes in lines:
        for t in taxes:
            totals[t.code] = totals.get(t.code, 0) + t.amount_cents
    return tuple(
        TaxAmount(code=r.code, name=r.name, rate_ppm=r.rate_ppm, amount_cents=totals[r.code])
        for r in table.rules
        if r.code in totals
    )


def format_rate(rate_ppm: int) -> str:
    """72_500 -> "7.25%"."""
    whole, frac = divmod(rate_ppm, PPM // 100)
    return f"{whole}" + (f".{frac:04d}".rstrip("0") if frac else "") + "%"
