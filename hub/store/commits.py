"""Commit topics: what a write asks to happen once its transaction has committed, and a generation per topic.

A write function running in the writer marks a topic (``store.commits.mark("state_outbox")``), directly or
through a :class:`hub.store.tables.Table` declared with ``marks=``. The mark belongs to that request: if
the request fails, or its batch does not commit, it is forgotten. When the batch has committed, the writer
calls :meth:`Commits.fire` on the trio thread: each marked topic's generation moves on by one and its
listeners run (an outbox's sender wakes). Writes outside the writer (seeding, migrations on open) mark
nothing: nobody is running yet to hear them.

A write may also mark a topic for one key (``mark("ledger", key=customer_id)``): the keyed topic has a
generation of its own, so a cache of one customer's figures goes stale when that customer's entries are
written, not when anybody's are. Keyed generations are kept for the most recent keys only (see
:meth:`Commits.generation`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger("hub.store.commits")

KEY_SEPARATOR = "\x00"  # between a topic and its key in a keyed mark (no topic name holds a NUL)
KEYED_KEPT = 4096  # keyed generations remembered before they are forgotten together (memory stays bounded)


def keyed(topic: str, key: str) -> str:
    """The mark of ``topic`` for one ``key``."""
    return f"{topic}{KEY_SEPARATOR}{key}"


class Commits:
    def __init__(self) -> None:
        self._local = threading.local()  # the marks of the request running on this (the writer's) thread
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._generations: dict[str, int] = {}
        # keyed topics: the tick of each key's last committed write; a key not held answers the floor
        self._keyed: dict[str, int] = {}
        self._tick = 0
        self._floor = 0

    # ---- in a write function (the writer's thread) ----
    def mark(self, topic: str, key: str | None = None) -> None:
        """Mark ``topic`` (and, with ``key``, ``topic`` for that key too) for this request."""
        marks: set[str] | None = getattr(self._local, "marks", None)
        if marks is not None:
            marks.add(topic)
            if key is not None:
                marks.add(keyed(topic, key))

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
            if KEY_SEPARATOR in topic:
                self._bump_keyed(topic)
            else:
                self._generations[topic] = self._generations.get(topic, 0) + 1
            for fn in list(self._listeners.get(topic, ())):
                try:
                    fn()
                except Exception:
                    log.exception("a listener of %s failed", topic)

    def _bump_keyed(self, mark: str) -> None:
        if len(self._keyed) >= KEYED_KEPT and mark not in self._keyed:
            # forget every key at once: from now on an unknown key answers the newest tick, which no cache
            # entry made before can hold for it (a spurious miss at worst, never a stale hit)
            self._keyed.clear()
            self._floor = self._tick
        self._tick += 1
        self._keyed[mark] = self._tick

    def generation(self, topic: str, key: str | None = None) -> int:
        """How many committed batches wrote ``topic`` since the store was opened (a cache's freshness).

        With ``key``: a number that moves on whenever a committed batch wrote ``topic`` for that key, and
        may move on at other times too (when older keys are forgotten). It never comes back to a value it
        had, so a cache entry kept with it is stale exactly when the number differs; writes for other keys
        leave it alone."""
        if key is None:
            return self._generations.get(topic, 0)
        return self._keyed.get(keyed(topic, key), self._floor)

    def listen(self, topic: str, fn: Callable[[], None]) -> Callable[[], None]:
        """Call ``fn`` (on the trio thread, without arguments) after every commit that marked ``topic``;
        returns the function that stops it."""
        self._listeners.setdefault(topic, []).append(fn)

        def stop() -> None:
            fns = self._listeners.get(topic, [])
            if fn in fns:
                fns.remove(fn)

        return stop
