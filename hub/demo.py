"""The demo store: an embedded configuration, demo staff with PINs, and pairing codes for its registers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub import auth
from hub.config import ChainSection, ConfigError, StoreConfig, parse_config
from hub.store.env import Store
from hub.store.keys import text

DEMO_TOML = """
[store]
name = "Green Counter Demo Dispensary"
licence = "C10-0000001-LIC"
jurisdiction = "CA"
time_zone = "America/Los_Angeles"
address = "1 Demo Way, Sacramento, CA"

[server]
host = "127.0.0.1"
http_port = 8080
ws_port = 8765
demo = true
heartbeat_seconds = 15

[storage]
data_dir = "./storehub-demo-data"
map_size_mb = 256

[[registers]]
id = "R1"
name = "Register 1"

[[registers]]
id = "R2"
name = "Register 2"

# the back office is a browser too: it is enrolled like a register and used by managers
[[registers]]
id = "OFFICE"
name = "Back office"

# a handheld that picks online orders (issue 14), paired and logged in like a register
[[registers]]
id = "P1"
name = "Picker 1"
kind = "picker"

# the store's own web menu: orders come in signed with this secret (see hub/orders/api.py)
[[channels]]
id = "demo-web"
name = "Demo web menu"
secret = "demo-channel-secret-not-for-production"
"""

# staff id, name, role, PIN: printed by `storehub demo`, never used outside a demo store
DEMO_STAFF = (
    ("ana", "Ana Budtender", "budtender", "1111"),
    ("tom", "Tom Technician", "technician", "2222"),
    ("maria", "Maria Manager", "manager", "3333"),
    ("root", "Store Admin", "admin", "4444"),
)
# fixed demo pairing codes, so the README and the browser tests can use them
DEMO_PAIRING = {"R1": "11111111", "R2": "22222222", "OFFICE": "33333333", "P1": "44444444"}


def demo_config(
    data_dir: str, *, host: str = "127.0.0.1", http_port: int = 8080, ws_port: int = 8765
) -> StoreConfig:
    cfg = parse_config(DEMO_TOML, source="demo store")
    cfg.storage.data_dir = data_dir
    cfg.server.host = host
    cfg.server.http_port = http_port
    cfg.server.ws_port = ws_port
    return cfg


def join_chain(cfg: StoreConfig, chain_toml: Path) -> StoreConfig:
    """The demo store as one store of a chain: the file's ``[chain]`` table (hub/chain/)."""
    import tomllib

    import msgspec

    try:
        raw = tomllib.loads(chain_toml.read_text(encoding="utf-8"))
        cfg.chain = msgspec.convert(raw["chain"], ChainSection)
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"{chain_toml}: not a usable [chain] table ({exc})") from None
    return cfg


def seed_demo(store: Store, config: StoreConfig) -> dict[str, Any]:
    """Create demo staff and fresh pairing codes (idempotent: an existing demo store keeps its staff)."""
    now = datetime.now(UTC)
    with store.env.begin(write=True) as txn:
        for staff_id, name, role, pin in DEMO_STAFF:
            if txn.get(text(staff_id), db=store.db("staff")) is None:
                auth.add_staff(txn, store, auth.new_staff(staff_id, name, role, pin), by="demo")  # type: ignore[arg-type]
        for reg in config.registers:
            code = DEMO_PAIRING.get(reg.id)
            if code:
                auth.create_pairing_code(txn, store, reg.id, by="demo", now=now, code=code)
    return {"staff": DEMO_STAFF, "pairing": DEMO_PAIRING}
