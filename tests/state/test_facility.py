"""A store and the state facility it reports to agree: state, licence form and time zone. Metrc writes
``SalesDateTime`` "in the same time zone as the Facility recording the sales", so a facility in another zone
would put every sale at the wrong hour; the hub refuses to start rather than report it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub import wiring
from hub.config import ConfigError, check_facility, load_config, parse_config
from hub.demo import DEMO_TOML
from hub.domain.state_payloads import StateSale, StateSaleLine, metrc_receipt
from hub.state_channel import feature as state_channel
from hub.wiring import DemoOptions, Features
from sandbox import demo as sbx
from tests.conftest import make_config

STATE = """
[state_system]
kind = "metrc"
base_url = "https://api-ca.metrc.example"
license_number = "C10-0000001-LIC"
facility_state = "{state}"
facility_time_zone = "{zone}"
"""


def test_the_demo_store_and_its_sandbox_facility_agree() -> None:
    store = parse_config(DEMO_TOML, source="demo").store
    assert (store.jurisdiction, store.time_zone) == (sbx.METRC_STATE, sbx.METRC_TIME_ZONE)
    assert sbx.METRC_LICENSE == store.licence
    assert re.fullmatch(r"C(9|1[0-2])-\d{7}-LIC", sbx.METRC_LICENSE)  # a California (DCC) licence
    assert re.fullmatch(r"CCL\d{2}-\d{7}", sbx.SHIPPER_LICENSE)


def test_a_facility_in_another_zone_or_state_is_refused(tmp_path: Path) -> None:
    ok = make_config(tmp_path, STATE.format(state="CA", zone="America/Los_Angeles"))
    assert ok.facility_time_zone == "America/Los_Angeles"
    with pytest.raises(ConfigError, match="facility_time_zone"):
        make_config(tmp_path, STATE.format(state="CA", zone="America/Denver"))
    with pytest.raises(ConfigError, match="facility_state"):
        make_config(tmp_path, STATE.format(state="CO", zone="America/Los_Angeles"))
    with pytest.raises(ConfigError, match="unknown time zone"):
        make_config(tmp_path, STATE.format(state="CA", zone="Mars/Olympus"))


def test_the_shipped_example_config_agrees(tmp_path: Path) -> None:
    config = load_config(Path(__file__).parents[2] / "ops" / "store.toml")
    check_facility(config)
    assert config.facility_time_zone == config.store.time_zone


def test_the_hub_does_not_start_when_its_demo_facility_is_elsewhere(tmp_path: Path) -> None:
    """The demo points the hub at the sandbox's (California) facility after reading the config: a store
    configured in Colorado is refused when the state channel is installed, before anything is reported."""
    config = make_config(tmp_path, "")
    config.store.jurisdiction, config.store.time_zone = "CO", "America/Denver"
    # the demo's sandbox: wiring points the hub at its facility, then checks it
    features = Features(state_channel=state_channel.ChannelOptions(), demo=DemoOptions(devices=False))
    with pytest.raises(ConfigError, match="time zone"):
        wiring.build(config, features)
    config.store.jurisdiction, config.store.time_zone = "CA", "America/Los_Angeles"
    hub = wiring.build(config, features)  # the same hub in California starts
    assert hub.services.start


def test_sales_date_time_is_the_facility_s_local_time(tmp_path: Path) -> None:
    config = make_config(tmp_path, STATE.format(state="CA", zone="America/Los_Angeles"))
    sale = StateSale(
        external_receipt_number="TZ-1",
        sold_at=datetime(2024, 7, 4, 2, 30, 15, tzinfo=UTC),  # 19:30:15 the evening before in Los Angeles
        store_time_zone=config.facility_time_zone,
        lines=(StateSaleLine(package_label="1A4A", unit_of_measure="Each", units=1, total_price_cents=100),),
    )
    assert metrc_receipt(sale)["SalesDateTime"] == "2024-07-03T19:30:15.000"
