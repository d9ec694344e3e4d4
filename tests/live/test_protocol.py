"""The live protocol's union is explicit and complete: every command is named once in hub/live/protocol.py."""

from __future__ import annotations

import importlib
import pkgutil

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


def test_the_union_decodes_each_feature_s_commands() -> None:
    assert type(decode_command('{"type":"scan","id":"1","data":"x"}')).__module__ == "hub.sale.protocol"
    assert (
        type(decode_command('{"type":"claim_order","id":"1","order_id":"o1"}')).__module__
        == "hub.orders.protocol"
    )
    assert type(decode_command('{"type":"apply_promo_code","id":"1","code":"X"}')).__module__ == (
        "hub.catalogue.protocol"
    )
