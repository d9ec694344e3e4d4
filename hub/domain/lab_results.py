"""A package's lab result as the store shows it: potency, contaminant tests, the certificate of analysis.

Built from the state system's rows where it offers them (Metrc ``GET /labtests/v2/results``: one row per
test type with ``testTypeName``, ``testPassed`` and ``testResultLevel``); potency rows are recognised by
their test type naming THC or CBD with a percentage. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec


class ContaminantTest(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    passed: bool | None
    level: str = ""


class LabResult(msgspec.Struct, frozen=True, kw_only=True):
    package_tag: str
    lab: str = ""
    lab_licence: str = ""
    tested_on: date | None = None
    overall_passed: bool | None = None
    thc_bp: int | None = None  # total THC, basis points of weight
    cbd_bp: int | None = None
    contaminants: tuple[ContaminantTest, ...] = ()
    coa_url: str = ""
    source: str = ""  # "metrc", "manual"
    fetched_at: datetime | None = None


_THC = re.compile(r"\b(total\s+)?thc\b", re.I)
_CBD = re.compile(r"\b(total\s+)?cbd\b", re.I)


def _bp(level: Any) -> int | None:
    try:
        return int((Decimal(str(level)) * 100).to_integral_value())
    except (InvalidOperation, ValueError):
        return None


def from_metrc(tag: str, rows: Sequence[Any], *, fetched_at: datetime, coa_url: str = "") -> LabResult | None:
    """The newest released, unrevoked result of ``rows`` (MetrcLabTest-like objects); None without one."""
    live = [r for r in rows if not getattr(r, "revoked_date", None)]
    if not live:
        return None
    newest_id = max(r.lab_test_result_id for r in live)
    mine = [r for r in live if r.lab_test_result_id == newest_id]
    thc: tuple[int, int | None] = (0, None)  # (preference, bp): "Total THC" beats plain "THC"
    cbd: tuple[int, int | None] = (0, None)
    contaminants: list[ContaminantTest] = []
    for r in mine:
        name = (r.test_type_name or "").strip()
        level = r.test_result_level
        is_pct = "%" in name or "percent" in name.lower()
        if is_pct and _THC.search(name) and level is not None:
            pref = 2 if "total" in name.lower() else 1
            if pref > thc[0]:
                thc = (pref, _bp(level))
            continue
        if is_pct and _CBD.search(name) and level is not None:
            pref = 2 if "total" in name.lower() else 1
            if pref > cbd[0]:
                cbd = (pref, _bp(level))
            continue
        contaminants.append(
            ContaminantTest(
                name=name or "test", passed=r.test_passed, level="" if level is None else str(level)
            )
        )
    first = mine[0]
    tested = None
    if first.test_performed_date:
        try:
            tested = date.fromisoformat(first.test_performed_date[:10])
        except ValueError:
            tested = None
    return LabResult(
        package_tag=tag,
        lab=first.lab_facility_name or "",
        lab_licence=first.lab_facility_license_number or "",
        tested_on=tested,
        overall_passed=first.overall_passed,
        thc_bp=thc[1],
        cbd_bp=cbd[1],
        contaminants=tuple(sorted(contaminants, key=lambda c: c.name)),
        coa_url=coa_url,
        source="metrc",
        fetched_at=fetched_at,
    )
