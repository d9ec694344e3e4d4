from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import ConfigError, parse_config
from tests.conftest import TEST_TOML


def test_valid_config_decodes() -> None:
    cfg = parse_config(TEST_TOML)
    assert cfg.store.jurisdiction == "CA" and [r.id for r in cfg.registers] == ["R1", "R2", "OFFICE"]
    assert str(cfg.zone) == "America/Los_Angeles"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("http_port = 0", 'http_port = "eighty"'), "server.http_port: Expected `int`, got `str`"),
        (("http_port = 0", "http_port = 70000"), "server.http_port: Expected `int` <= 65535"),
        (('jurisdiction = "CA"', 'jurisdiction = "California"'), "store.jurisdiction"),
        (
            ('time_zone = "America/Los_Angeles"', 'time_zone = "Mars/Olympus"'),
            "unknown time zone 'Mars/Olympus'",
        ),
        (("heartbeat_seconds = 5", "heartbeat_seconds = 5\ncolour = 1"), "unknown field `colour`"),
        (('name = "Test Store"', ""), "missing required field `name`"),
        (('id = "R2"', 'id = "R1"'), "registers[1].id: register 'R1' is listed twice"),
    ],
)
def test_invalid_config_names_field(change: tuple[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_config(TEST_TOML.replace(*change, 1))


def test_register_device_reference_checked() -> None:
    with pytest.raises(ConfigError, match=r"registers\[0\].scale: no device with id 'scale-9'"):
        parse_config(TEST_TOML.replace('name = "Register 1"', 'name = "Register 1"\nscale = "scale-9"'))


def test_example_store_toml_is_valid() -> None:
    from pathlib import Path

    from hub.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "ops" / "store.toml")
    assert cfg.registers and cfg.devices


def test_tax_table_checked_at_load() -> None:
    bad = (
        TEST_TOML
        + '\n[taxes]\nprices_include_tax = false\n[[taxes.rules]]\ncode = "x"\nname = "X"\nrate_ppm = "ten"\napplies_to = ["cannabis"]\n'
    )
    with pytest.raises(ConfigError, match=r"taxes: rules\[0\]\.rate_ppm"):
        parse_config(bad)


def test_promotions_checked_at_load() -> None:
    good = (
        TEST_TOML
        + '\n[[promotions]]\nkind = "category_percent"\nid = "e10"\nname = "Edibles 10%"\ncategory = "edible"\npercent_bp = 1000\n'
    )
    assert parse_config(good).promotions[0]["id"] == "e10"
    bad = good.replace('kind = "category_percent"', 'kind = "half_price_everything"')
    with pytest.raises(ConfigError, match=r"promotions\[0\]"):
        parse_config(bad)


def _run_refused(tmp_path: Path, toml: str | bytes) -> str:
    """``storehub run`` with this store.toml: refused in one line naming the field, exit 2, no traceback."""
    cfg = tmp_path / "store.toml"
    if isinstance(toml, str):
        cfg.write_text(toml)
    else:
        cfg.write_bytes(toml)
    r = subprocess.run(
        [sys.executable, "-m", "hub.cli", "run", "--config", str(cfg), "--log-level", "WARNING"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("storehub: configuration refused: "), r.stderr
    return lines[0]


def _toml(tmp_path: Path, data_dir: str | None = None) -> str:
    return TEST_TOML.replace('data_dir = "UNSET"', f'data_dir = "{data_dir or tmp_path / "data"}"')


def test_a_non_utf8_store_toml_is_refused(tmp_path: Path) -> None:
    toml = _toml(tmp_path).replace('name = "Test Store"', 'name = "Caf\u00e9 Store"').encode("latin-1")
    line = _run_refused(tmp_path, toml)
    assert "store.toml: line 3" in line and "UTF-8" in line


def test_missing_tls_files_are_refused(tmp_path: Path) -> None:
    toml = _toml(tmp_path).replace(
        "max_frame_bytes = 65536",
        f'max_frame_bytes = 65536\ntls_cert = "{tmp_path}/none.pem"\ntls_key = "{tmp_path}/none.key"',
    )
    assert "server.tls_cert: no file at" in _run_refused(tmp_path, toml)
    (tmp_path / "none.pem").write_text("not a certificate")
    (tmp_path / "none.key").write_text("not a key")
    assert "server.tls_cert:" in _run_refused(tmp_path, toml)


def test_an_uncreatable_data_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    line = _run_refused(tmp_path, _toml(tmp_path, f"{tmp_path}/a-file/data"))  # even root cannot
    assert "storage.data_dir: cannot create" in line


def test_an_unresolvable_host_is_refused(tmp_path: Path) -> None:
    toml = _toml(tmp_path).replace('host = "127.0.0.1"', 'host = "no-such-host.invalid"')
    assert "server.host: cannot resolve 'no-such-host.invalid'" in _run_refused(tmp_path, toml)
