"""Fault injection for the sandbox, settable at run time through ``/_sandbox/faults``.

What a state system does to a store on a bad day: answers 500 at random, answers slowly, is down for a
while (503), or stores a request and then loses the response (the connection drops with no reply).
Also the GET rate limits, so a test can lower them and provoke 429s.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

API_METHODS = ("GET", "POST", "PUT", "DELETE")


@dataclass
class Faults:
    error_rate: float = 0.0  # share of API requests answered 500 without being applied
    latency_ms: int = 0  # added to every API request
    outage_until: float | None = None  # wall-clock epoch seconds; None = no outage; inf = until cleared
    drop_every: int = 0  # every Nth matching request is applied, then its connection drops unanswered
    drop_methods: list[str] = field(default_factory=lambda: list(API_METHODS))
    get_rate_per_second: int = 50  # Metrc: 50 GET/s per facility
    get_concurrency: int = 10  # Metrc: 10 concurrent GET per facility
    seed: int | None = None
    # counters, reported back
    drop_counter: int = 0
    dropped: int = 0
    errors_injected: int = 0
    outage_refusals: int = 0
    rate_limited: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def in_outage(self, now: float | None = None) -> bool:
        if self.outage_until is None:
            return False
        if (now if now is not None else time.time()) >= self.outage_until:
            self.outage_until = None
            return False
        return True

    def should_error(self) -> bool:
        return self.error_rate > 0 and self.rng.random() < self.error_rate

    def should_drop(self, method: str) -> bool:
        if self.drop_every <= 0 or method not in self.drop_methods:
            return False
        self.drop_counter += 1
        return self.drop_counter % self.drop_every == 0

    def update(self, patch: dict[str, Any]) -> list[str]:
        """Apply a partial setting; returns human-readable problems (and applies nothing if any)."""
        problems: list[str] = []
        known = {
            "error_rate",
            "latency_ms",
            "outage_seconds",
            "outage",
            "drop_every",
            "drop_methods",
            "get_rate_per_second",
            "get_concurrency",
            "seed",
        }
        for key in patch:
            if key not in known:
                problems.append(f"unknown fault setting {key!r}; known: {sorted(known)}")
        rate = patch.get("error_rate", self.error_rate)
        if not isinstance(rate, int | float) or not 0 <= rate <= 1:
            problems.append("error_rate must be a number from 0 to 1")
        for name in ("latency_ms", "drop_every"):
            value = patch.get(name, 0)
            if not isinstance(value, int) or value < 0:
                problems.append(f"{name} must be a non-negative integer")
        for name in ("get_rate_per_second", "get_concurrency"):
            value = patch.get(name, 1)
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer")
        methods = patch.get("drop_methods", self.drop_methods)
        if not isinstance(methods, list) or any(m not in API_METHODS for m in methods):
            problems.append(f"drop_methods must be a list drawn from {list(API_METHODS)}")
        outage_s = patch.get("outage_seconds")
        if outage_s is not None and (not isinstance(outage_s, int | float) or outage_s < 0):
            problems.append("outage_seconds must be a non-negative number")
        if problems:
            return problems
        if "error_rate" in patch:
            self.error_rate = float(patch["error_rate"])
        if "latency_ms" in patch:
            self.latency_ms = patch["latency_ms"]
        if "drop_every" in patch:
            self.drop_every = patch["drop_every"]
            self.drop_counter = 0
        if "drop_methods" in patch:
            self.drop_methods = [m.upper() for m in patch["drop_methods"]]
        if "get_rate_per_second" in patch:
            self.get_rate_per_second = patch["get_rate_per_second"]
        if "get_concurrency" in patch:
            self.get_concurrency = patch["get_concurrency"]
        if "seed" in patch:
            self.seed = patch["seed"]
            self.rng.seed(self.seed)
        if "outage" in patch:
            self.outage_until = float("inf") if patch["outage"] else None
        if outage_s is not None:
            self.outage_until = time.time() + float(outage_s) if outage_s > 0 else None
        return []

    def as_json(self) -> dict[str, Any]:
        remaining = None
        if self.in_outage():
            assert self.outage_until is not None
            remaining = (
                None if self.outage_until == float("inf") else round(self.outage_until - time.time(), 3)
            )
        return {
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms,
            "outage": self.outage_until is not None,
            "outage_remaining_seconds": remaining,
            "drop_every": self.drop_every,
            "drop_methods": self.drop_methods,
            "get_rate_per_second": self.get_rate_per_second,
            "get_concurrency": self.get_concurrency,
            "seed": self.seed,
            "counters": {
                "dropped": self.dropped,
                "errors_injected": self.errors_injected,
                "outage_refusals": self.outage_refusals,
                "rate_limited": self.rate_limited,
            },
        }


@dataclass
class GetLimits:
    """Metrc's GET limits per facility: a one-second sliding window and a concurrency cap."""

    recent: dict[str, deque[float]] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)

    def admit(self, key: str, now: float, per_second: int, concurrency: int) -> bool:
        window = self.recent.setdefault(key, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= per_second or self.in_flight.get(key, 0) >= concurrency:
            return False
        window.append(now)
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        return True

    def release(self, key: str) -> None:
        self.in_flight[key] = max(0, self.in_flight.get(key, 0) - 1)
