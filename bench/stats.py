"""Percentiles of samples and quantiles of Prometheus histograms (the way ``histogram_quantile`` does it)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no samples."""
    if not samples:
        return math.nan
    s = sorted(samples)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def summary(samples: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean and count of samples in seconds."""
    if not samples:
        return {"n": 0, "p50": math.nan, "p90": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    return {
        "n": len(samples),
        "p50": percentile(samples, 50),
        "p90": percentile(samples, 90),
        "p99": percentile(samples, 99),
        "max": max(samples),
        "mean": sum(samples) / len(samples),
    }


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {'name{labels}': value} (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


def histogram(metrics: dict[str, float], name: str) -> tuple[list[tuple[float, float]], float, float]:
    """(cumulative buckets [(le, count)], sum, count) of an unlabelled histogram."""
    buckets = []
    prefix = name + '_bucket{le="'
    for key, value in metrics.items():
        if key.startswith(prefix):
            le = key[len(prefix) : -2]
            buckets.append((math.inf if le == "+Inf" else float(le), value))
    buckets.sort()
    return buckets, metrics.get(name + "_sum", 0.0), metrics.get(name + "_count", 0.0)


def histogram_delta(
    before: dict[str, float], after: dict[str, float], name: str
) -> tuple[list[tuple[float, float]], float, float]:
    b0, s0, c0 = histogram(before, name)
    b1, s1, c1 = histogram(after, name)
    prev = dict(b0)
    return [(le, n - prev.get(le, 0.0)) for le, n in b1], s1 - s0, c1 - c0


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Linear interpolation inside the bucket that holds the q-quantile (q in 0..1), like PromQL."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    total = buckets[-1][1]
    rank = q * total
    lower_le, lower_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if math.isinf(le):
                return lower_le  # beyond the last finite bucket: its bound is all we know
            if n == lower_n:
                return le
            return lower_le + (le - lower_le) * (rank - lower_n) / (n - lower_n)
        lower_le, lower_n = le, n
    return math.nan
