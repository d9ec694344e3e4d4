"""``python -m bench --quick`` runs end to end (raw limits, echo, the hub under load) and writes every
ratio as a number. No timing is asserted: CI machines vary, the figures are for people to read."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

RATIOS = (
    "lookup_vs_lmdb",
    "scan_rtt_vs_echo_1",
    "scan_p99_vs_echo_p99_50",
    "sales_vs_ceiling_50",
    "growth_history",
    "rss_mb_100k",
)
ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_writes_every_ratio(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["quick"] is True
    for key in RATIOS:
        entry = result["ratios"][key]
        assert isinstance(entry["value"], float) and math.isfinite(entry["value"]), (key, entry)
        assert entry["target"] and isinstance(entry["pass"], bool)
    # the raw limits and every load point were measured in the same run
    assert set(result["raw"]["durable_commits"]) == {"1", "10", "100"}
    for dataset in ("small", "large"):
        for point in result["hub"][dataset]["points"].values():
            assert point["sales"] > 0 and not point["errors"], point
    assert "rss_mb_100k" in r.stdout  # the table was printed
