"""Commit topics: what a write asks to happen once its transaction has committed, and a generation per topic.

A write function running in the writer marks a topic (``store.commits.mark("state_outbox")``), directly or
through a :class:`hub.store.tables.Table` declared with ``marks=``. The mark belongs to that request: if
the request fails, or its batch does not commit, it is forgotten. When the batch has committed, the writer
calls :meth:`Commits.fire` on the trio thread: each marked topic's generation moves on by one and its
listeners run (an outbox's sender wakes). Writes outside the writer (seeding, migrations on open) mark
nothing: nobody is running yet to hear them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger("hub.store.commits")


class Commits:
    def __init__(self) -> None:
        self._local = threading.local()  # the marks of the request running on this (the writer's) thread
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._generations: dict[str, int] = {}

    # ---- in a write function (the writer's thread) ----
    def mark(self, topic: str) -> None:
        marks: set[str] | None = getattr(self._local, "marks", None)
        if marks is not None:
            marks.add(topic)

    # ---- the writer, around each request ----
    def begin_request(self) -> None:
        self._local.marks = set()

    def end_request(self) -> frozenset[str]:
        """The topics the request marked (call after it succeeded; a failed request's marks are dropped)."""
        marks: set[str] = getattr(self._local, "marks", None) or set()
        self._local.marks = None
        return frozenset(marks)

    def drop_request(self) -> None:
        self._local.marks = None

    # ---- the trio thread ----
    def fire(self, topics: Iterable[str]) -> None:
        """A batch that marked ``topics`` has committed."""
        for topic in sorted(set(topics)):
            self._generations[topic] = self._generations.get(topic, 0) + 1
            for fn in list(self._listeners.get(topic, ())):
                try:
                    fn()
                except Exception:
                    log.exception("a listener of %s failed", topic)

    def generation(self, topic: str) -> int:
        """How many committed batches wrote ``topic`` since the store was opened (a cache's freshness)."""
        return self._generations.get(topic, 0)

    def listen(self, topic: str, fn: Callable[[], None]) -> Callable[[], None]:
        """Call ``fn`` (on the trio thread, without arguments) after every commit that marked ``topic``;
        returns the function that stops it."""
        self._listeners.setdefault(topic, []).append(fn)

        def stop() -> None:
            fns = self._listeners.get(topic, [])
            if fn in fns:
                fns.remove(fn)

        return stop
