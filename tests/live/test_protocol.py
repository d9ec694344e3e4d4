"""The live protocol's union is explicit and complete: every command is named once in hub/live/protocol.py."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import actors
import hub
from hub.live.frames import Command
from hub.live.protocol import COMMANDS, command_types, decode_command
from hub.wiring import Features, tables


def _every_subclass(cls: type) -> set[type]:
    out: set[type] = set()
    stack = list(cls.__subclasses__())
    while stack:
        c = stack.pop()
        out.add(c)
        stack.extend(c.__subclasses__())
    return out


def test_every_command_is_in_the_union_and_handled() -> None:
    for package in (hub, actors):  # every module loaded: each command defined, each handler registered
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(info.name)
    defined = {c for c in _every_subclass(Command) if c.__struct_config__.tag is not None}
    assert defined - set(COMMANDS) == set(), "defined but not listed in hub/live/protocol.py COMMANDS"
    assert len(COMMANDS) == len(set(COMMANDS)) == len(command_types())
    assert set(tables(Features.store())[0]) <= set(COMMANDS), "a handler for a command the hub cannot receive"


# run in a fresh interpreter: only what production loads (hub.wiring) and the table of a full store
_HANDLED_AFTER_WIRING = """
from hub.live.protocol import COMMANDS
from hub.wiring import Features, tables
handled = set(tables(Features.store())[0])
print(" ".join(sorted(c.__name__ for c in set(COMMANDS) - handled)))
print(" ".join(sorted(c.__name__ for c in handled - set(COMMANDS))))
"""


def test_every_command_but_pair_hello_and_ping_has_a_handler_once_the_hub_is_wired() -> None:
    """What production loads (hub.wiring, the composition root) handles every command of the union; pair,
    hello and ping are the session's own (hub/live/session.py)."""
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    out = subprocess.run(
        [sys.executable, "-c", _HANDLED_AFTER_WIRING],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    unhandled, unlisted = (out + ["", ""])[:2]
    assert set(unhandled.split()) == {"Pair", "Hello", "Ping"}, "a command of the union without a handler"
    assert unlisted == "", "a handler for a command the hub cannot receive"


def test_the_union_decodes_each_feature_s_commands() -> None:
    assert type(decode_command('{"type":"scan","id":"1","data":"x"}')).__module__ == "hub.sale.protocol"
    assert (
        type(decode_command('{"type":"claim_order","id":"1","order_id":"o1"}')).__module__
        == "hub.orders.protocol"
    )
    assert type(decode_command('{"type":"apply_promo_code","id":"1","code":"X"}')).__module__ == (
        "hub.catalogue.protocol"
    )
