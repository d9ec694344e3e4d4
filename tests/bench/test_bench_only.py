"""``python -m bench --only scan,sales,memory --repeat N`` measures just issue 13's hot-path figures, each
run from fresh stores, and reports every figure as median and spread with the load average and the hub's
memory (RssAnon beside VmRSS and RssFile). No timing is asserted: the figures are for people to read."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_only_hot_path_parts_repeated(tmp_path: Path) -> None:
    out = tmp_path / "hot.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "scan,sales,memory",
            "--repeat",
            "2",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["parts"] == ["scan", "sales", "memory"] and result["repeat"] == 2
    assert set(result["figures"]) == {"scan_rtt_vs_echo_1", "sales_vs_ceiling_50", "rss_anon_mb_100k"}
    for key, f in result["figures"].items():
        assert len(f["runs"]) == 2, key
        assert all(isinstance(v, float) and math.isfinite(v) for v in f["runs"]), (key, f)
        assert f["min"] <= f["median"] <= f["max"], (key, f)
        assert isinstance(f["pass"], bool) and f["target"]
    assert result["figures"]["scan_rtt_vs_echo_1"]["target"] == "<= 2.5"
    assert result["figures"]["sales_vs_ceiling_50"]["target"] == ">= 0.3"
    assert result["figures"]["rss_anon_mb_100k"]["target"] == "<= 100"
    # private memory is reported beside the resident set and the file-backed pages, from /proc/<pid>/status
    for key in ("RssAnon_mb", "VmRSS_mb", "RssFile_mb"):
        assert result["detail"][key]["median"] > 0, key
    mem = result["detail"]
    assert mem["RssAnon_mb"]["median"] <= mem["VmRSS_mb"]["median"]
    for run in result["runs"]:
        assert len(run["load_average"]["before"]) == 3
        # only what the parts need ran: one echo per client count, no LMDB get timing, no lookups
        assert "lmdb_get_decode" not in run["raw"]
        assert run["hub"]["small"]["lookup"] is None
        for dataset in ("small", "large"):
            for point in run["hub"][dataset]["points"].values():
                assert point["sales"] > 0 and not point["errors"], point
    assert "rss_anon_mb_100k" in r.stdout and "RssFile_mb" in r.stdout
    # beside the hub, the same load against a server that only answers (bench/nullhub.py): the bound
    for run in result["runs"]:
        null = run["raw"]["null_hub"]
        assert null["sales"] > 0 and not null["errors"] and null["requests_per_sale"] == 7, null
        assert null["server_cpu_us_per_request"] > 0 and null["loadgen_cpu_us_per_request"] > 0, null
    assert result["detail"]["null_hub_vs_ceiling_50"]["median"] > 0
    assert "null_hub_vs_ceiling_50" in r.stdout


def test_only_rejects_unknown_parts() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "scan,latency"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "latency" in r.stderr
