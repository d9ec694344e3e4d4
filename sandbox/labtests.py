"""Metrc lab test results in the sandbox: ``GET /labtests/v2/results?packageId=&licenseNumber=`` answers
the OpenAPI's ``LabTestMetrcWrapper`` of ``LabTest`` rows (one row per test type; camelCase as in
tests/sandbox/data/metrc-openapi-v2.yaml). Results come from ``POST /_sandbox/labtests`` (planted by a test
or a person); a package with none planted gets a deterministic passing result, so the demo has some.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sandbox.http import Reply, Request, Router, message
from sandbox.metrc_api import MetrcApi

CONTAMINANTS = ("Pesticides", "Microbials", "Heavy Metals", "Mycotoxins", "Residual Solvents")


class LabTests:
    def __init__(self, metrc: MetrcApi) -> None:
        self.metrc = metrc
        self.planted: dict[str, list[dict[str, Any]]] = {}

    def routes(self, router: Router) -> None:
        router.add("GET", "/labtests/v2/results", self.results)

    def admin_routes(self, admin: Router) -> None:
        admin.add("POST", "/_sandbox/labtests", self.plant)

    def plant(self, req: Request) -> Reply:
        """{label, lab?, tested?, results: [{type, level?, passed?}]}"""
        body = req.json() or {}
        if not isinstance(body, dict) or not isinstance(body.get("label"), str):
            return message(400, 'Give {"label": …, "results": [{"type": …, "level": …, "passed": …}]}.')
        rows = []
        result_id = 9000 + len(self.planted) + 1
        for r in body.get("results", []):
            rows.append(
                self._row(body["label"], result_id, r["type"], r.get("level"), r.get("passed", True), body)
            )
        self.planted[body["label"]] = rows
        return Reply(200, {"planted": len(rows)})

    @staticmethod
    def _row(
        label: str, result_id: int, type_name: str, level: Any, passed: bool, meta: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "packageId": 0,
            "labTestResultId": result_id,
            "labFacilityLicenseNumber": meta.get("lab_licence", "LAB-SBX-0001"),
            "labFacilityName": meta.get("lab", "Sandbox Analytical Labs"),
            "sourcePackageLabel": label,
            "productName": None,
            "productCategoryName": None,
            "testPerformedDate": meta.get("tested", "2026-01-15"),
            "overallPassed": all(r.get("passed", True) for r in meta.get("results", []))
            if meta.get("results")
            else True,
            "revokedDate": None,
            "resultReleased": True,
            "resultReleaseDateTime": "2026-01-16T12:00:00Z",
            "testTypeName": type_name,
            "testPassed": passed,
            "testResultLevel": level,
            "testComment": None,
            "testInformationalOnly": False,
            "labTestDetailRevokedDate": None,
            "expirationDateTime": None,
        }

    def results(self, req: Request) -> Reply:
        opened = self.metrc._open(req)
        if isinstance(opened, Reply):
            return opened
        raw = req.query.get("packageid", "")
        if not raw.isdigit():
            return message(400, "packageId is required and must be a number.")
        pkg = self.metrc.store.one("SELECT * FROM packages WHERE id = ?", int(raw))
        if pkg is None or (opened[2] is not None and pkg["license"] != opened[2]["license"]):
            return message(404, f"Package {raw} was not found.")
        label = pkg["label"]
        rows = self.planted.get(label)
        if rows is None:
            seed = int(hashlib.sha256(label.encode()).hexdigest()[:8], 16)
            thc = 15 + (seed % 1300) / 100
            meta: dict[str, Any] = {}
            rows = [
                self._row(
                    label, 5000 + seed % 1000, "Total THC (%) Raw Plant Material", round(thc, 2), True, meta
                ),
                self._row(
                    label,
                    5000 + seed % 1000,
                    "Total CBD (%) Raw Plant Material",
                    round((seed % 90) / 100, 2),
                    True,
                    meta,
                ),
            ]
            rows += [self._row(label, 5000 + seed % 1000, name, None, True, meta) for name in CONTAMINANTS]
        rows = [{**r, "packageId": int(raw)} for r in rows]
        return self.metrc._page(req, rows)
