"""Pushed states (topics): a version that only grows, the state built lazily and encoded once per version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.live.frames import Snapshot, encode


class Subscriber(Protocol):
    """A live connection, as a topic sees it."""

    def push_snapshot(self, topic: str) -> None: ...


@dataclass(eq=False)
class Topic:
    """A pushed state. Publishing only bumps the version; the state is built (and encoded, once for
    every subscriber) when a connection sends it, so ten changes in a burst cost one build."""

    name: str = ""
    version: int = 0
    state: Any = None
    compute: Callable[[], Any] | None = None
    subscribers: set[Subscriber] = field(default_factory=set)
    _built: int = -1
    _text: str = ""
    _text_version: int = -1

    def current(self) -> Any:
        if self.compute is not None and self._built != self.version:
            self.state = self.compute()
            self._built = self.version
        return self.state

    def encoded(self) -> str:
        if self._text_version != self.version:
            state = self.current()
            self._text = encode(Snapshot(topic=self.name, version=self.version, state=state))
            self._text_version = self.version
        return self._text
