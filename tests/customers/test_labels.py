"""Labels from each jurisdiction's template carry that state's required fields (checked for every rules
file), in ZPL a Zebra prints (field data escaped, the COA as a QR code); lab results pulled from the
sandbox's Metrc lab-test endpoint show on the product and print on the label."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
import trio
import yaml

from drivers.metrc import MetrcLabTest
from drivers.state_http import convert
from hub.client import connect
from hub.domain.devices import PrintZpl
from hub.domain.labels import LabelFacts, field_text, label_text, render_zpl
from hub.domain.limits.rules import available_jurisdictions, load_jurisdiction
from sandbox import demo as sbx
from sandbox.labtests import LabTests
from sandbox.server import SandboxConfig, SandboxHandle, serve
from tests.conftest import make_config, ws_url
from tests.customers.conftest import ALL, Shop, ready

FACTS = LabelFacts(
    product="Blue Dream 3.5g",
    brand="Sunrise Farms",
    category="flower",
    package_tag="1A4060300003B01000001234",
    licence="C10-0000001-LIC",
    store_name="Test Store",
    net_weight="3.5 g",
    thc="THC 22.50 %",
    cbd="CBD 0.10 %",
    packaged_on=date(2026, 3, 2),
    harvested_on=date(2026, 2, 1),
    coa_url="https://coa.example/lab/12345.pdf",
)
WORDS = {
    "thc": "THC 22.50 %",
    "cbd": "CBD 0.10 %",
    "licence": "C10-0000001-LIC",
    "package_tag": FACTS.package_tag,
    "packaged_date": "2026-03-02",
    "harvest_date": "2026-02-01",
    "net_weight": "3.5 g",
    "product": "Blue Dream 3.5g",
}


@pytest.mark.parametrize("code", available_jurisdictions())
def test_exit_label_has_the_jurisdictions_required_fields(code: str) -> None:
    j = load_jurisdiction(code)
    policy = j.label
    # every state's file names the basics the issue lists, and the warning's words
    assert {"warning", "thc", "cbd", "licence", "package_tag"} <= set(policy.required), code
    assert {"packaged_date", "harvest_date"} & set(policy.required), code
    assert policy.warning.strip() and policy.source, code
    printed = field_text(render_zpl(policy, FACTS, "exit"))
    for field in policy.required:
        if field == "warning":
            assert policy.warning in printed, code
        elif field in WORDS:
            assert WORDS[field] in printed, f"{code}: {field}"
    assert label_text(policy, FACTS).missing == []


def test_missing_data_is_named_and_the_qr_carries_the_coa() -> None:
    policy = load_jurisdiction("OR").label
    bare = LabelFacts(
        product="Gummies",
        brand="B",
        category="edible",
        package_tag="1A40603000000000000000AA",
        licence="L",
        store_name="S",
    )
    t = label_text(policy, bare)
    assert "harvest_date" in t.missing and "packaged_date" in t.missing and "thc" in t.missing
    assert "cbd" not in t.missing  # zero is a figure
    zpl = render_zpl(policy, FACTS).decode()
    # ^BQN,2,<mag>: QR model 2; data "QA," = error correction Q, automatic mode (ZPL II guide, ^BQ)
    assert "^BQN,2,4^FH_^FDQA,https://coa.example/lab/12345.pdf^FS" in zpl
    assert zpl.startswith("^XA") and zpl.rstrip().endswith("^XZ")


def test_label_text_cannot_inject_zpl() -> None:
    policy = load_jurisdiction("CA").label
    evil = LabelFacts(
        product="Kush^XZ~JR", brand="X", category="flower", package_tag="T", licence="L", store_name="S"
    )
    zpl = render_zpl(policy, evil).decode()
    assert "Kush^XZ" not in zpl and "~JR" not in zpl
    assert "Kush^XZ~JR" in field_text(zpl.encode())
    assert zpl.count("^XZ") == 1


async def test_label_printed_from_a_register(shop: Shop) -> None:
    hub = shop.hub
    send, recv = trio.open_memory_channel[Any](10)
    hub.services.devices = SimpleNamespace(
        inboxes={"lp-1": send}, paired={"lp-1": "R1"}, kinds={"lp-1": "label_printer"}
    )
    tag = shop.packages("FLW-00")[0].tag
    with trio.fail_after(20):
        async with connect(ws_url(hub)) as reg:
            token = await ready(reg, "R1", "ana", drawer=False)
            async with shop.rest(token) as http:
                pv = (await http.get(f"/api/labels/{tag}?kind=exit")).json()
                assert pv["jurisdiction"] == "CA" and pv["source"].startswith("4 CCR")
                fields = {ln["field"] for ln in pv["lines"]}
                assert {"warning", "thc", "licence", "package_tag", "packaged_date"} <= fields
                r = await http.post("/api/labels/print", json={"tag": tag, "kind": "exit"})
                assert r.status_code == 200, r.text
                shelf = await http.post("/api/labels/print", json={"tag": tag, "kind": "shelf"})
                assert shelf.status_code == 200
    job = recv.receive_nowait()
    assert isinstance(job, PrintZpl) and job.job_id.startswith("exit-label-")
    text = field_text(job.zpl)
    assert tag in text and "GOVERNMENT WARNING" in text and hub.config.store.licence in text
    assert "$" in field_text(recv.receive_nowait().zpl)  # the shelf label carries the price


@pytest.fixture
async def metrc_shop(nursery: trio.Nursery, hub_factory: Any, tmp_path: Path) -> Any:
    from hub.state_channel import feature as state_channel
    from hub.state_channel.demo import align_sandbox
    from tests.state.conftest import state_toml

    handle: SandboxHandle = await nursery.start(
        serve, SandboxConfig(data_dir=tmp_path / "sandbox", seed="demo")
    )
    config = make_config(tmp_path / "data", state_toml(handle.url))
    config.server.demo = True

    channel = state_channel.ChannelOptions(
        retry_policy=state_channel.fast_retry_policy(), poll_seconds=0.2, schedule=False
    )
    hub = await hub_factory(config, features=dataclasses.replace(ALL, state_channel=channel))
    await align_sandbox(hub, handle.url, sbx.METRC_LICENSE)
    try:
        yield Shop(hub=hub, sandbox=handle)
    finally:
        handle.stop()


async def test_lab_results_from_the_state_show_and_print(metrc_shop: Shop) -> None:
    hub, sandbox = metrc_shop.hub, metrc_shop.sandbox
    assert sandbox is not None
    pkg = metrc_shop.packages("FLW-00")[0]
    sandbox.app.labtests.planted[pkg.tag] = [
        sandbox.app.labtests._row(
            pkg.tag, 77, name, level, passed, {"lab": "Sandbox Labs", "tested": "2026-01-20"}
        )
        for name, level, passed in [
            ("Total THC (%) Raw Plant Material", 24.31, True),
            ("THC (%) Raw Plant Material", 1.2, True),
            ("Total CBD (%) Raw Plant Material", 0.07, True),
            ("Pesticides", None, True),
            ("Heavy Metals", None, False),
        ]
    ]
    with trio.fail_after(30):
        async with connect(ws_url(hub)) as office:
            token = await ready(office, "OFFICE", "maria", drawer=False)
            async with metrc_shop.rest(token) as http:
                await http.post(
                    f"/api/catalogue/products/{pkg.product_id}",
                    json={
                        "changes": {"coa_ref": "https://coa.example/sbx/77.pdf"},
                        "reason": "COA link from the lab",
                    },
                )
                lab = (await http.post(f"/api/labs/{pkg.tag}")).json()["lab"]
                assert lab["thc_bp"] == 2431 and lab["cbd_bp"] == 7 and lab["lab"] == "Sandbox Labs"
                assert {c["name"]: c["passed"] for c in lab["contaminants"]} == {
                    "Heavy Metals": False,
                    "Pesticides": True,
                }
                assert lab["coa_url"] == "https://coa.example/sbx/77.pdf" and lab["tested_on"] == "2026-01-20"
                detail = (await http.get(f"/api/catalogue/products/{pkg.product_id}")).json()
                shown = next(p for p in detail["packages"] if p["tag"] == pkg.tag)
                assert shown["lab"]["thc_bp"] == 2431
                pv = (await http.get(f"/api/labels/{pkg.tag}")).json()
                assert pv["qr"] == "https://coa.example/sbx/77.pdf"
                assert "THC 24.31 %" in [ln["text"] for ln in pv["lines"]]
                assert "QA,https://coa.example/sbx/77.pdf" in pv["zpl"]


def test_sandbox_lab_rows_have_the_openapi_labtest_shape() -> None:
    """The sandbox answers GET /labtests/v2/results with the OpenAPI file's LabTest properties (camelCase),
    and the hub's reader takes that row (tests/sandbox/data/metrc-openapi-v2.yaml, components LabTest)."""
    spec = yaml.safe_load(
        (Path(__file__).parents[1] / "sandbox" / "data" / "metrc-openapi-v2.yaml").read_text()
    )
    props = set(spec["components"]["schemas"]["LabTest"]["properties"])
    row = LabTests._row("1A4000000000000000000001", 5, "Total THC (%)", 21.5, True, {})
    assert set(row) == props
    wrapper = spec["paths"]["/labtests/v2/results"]["get"]["responses"]["200"]["content"]["application/json"]
    assert wrapper["schema"]["oneOf"][0]["$ref"].endswith("LabTestMetrcWrapper")
    [parsed] = convert([row], list[MetrcLabTest], system="metrc", endpoint="/labtests/v2/results")
    assert parsed.test_result_level == 21.5 and parsed.lab_test_result_id == 5
    assert msgspec.structs.asdict(parsed)["test_type_name"] == "Total THC (%)"
