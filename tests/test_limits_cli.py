"""`storehub limits` as compliance staff run it: a real subprocess, real JSON files, real exit codes."""

import json
import subprocess
import sys

import pytest

from hub.limits_cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.limits_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def write(tmp_path):
    def _write(name: str, data) -> str:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return str(path)

    return _write


def test_refused_cart_prints_the_violation_and_exits_1(write):
    cart = write("cart.json", [{"category": "concentrate", "net_weight_mg": 2600}])
    result = run("check", "--jurisdiction", "IL", "--customer", "adult-nonresident", "--cart", cart)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout) == {
        "allowed": False,
        "remaining": {"concentrate": 0, "flower": 15000, "infused": 250},
        "violations": [
            {
                "rule": "il-nonresident-concentrate",
                "bucket": "concentrate",
                "limit": 2500,
                "amount": 2600,
                "message": "Illinois non-resident: concentrate 2.6 g of 2.5 g per transaction",
            }
        ],
    }


def test_allowed_with_history_and_at_exits_0(write):
    cart = write("cart.json", [{"category": "flower", "net_weight_mg": 3500, "quantity": 2}])
    history = write(
        "history.json",
        [
            {"category": "flower", "net_weight_mg": 14000, "at": "2025-06-14T09:00:00-07:00"},
            {"category": "flower", "net_weight_mg": 28500, "at": "2025-06-13T23:59:59-07:00"},  # yesterday
        ],
    )
    result = run(
        "check", "--jurisdiction", "CA", "--customer", "adult", "--history", history, "--cart", cart,
        "--at", "2025-06-14T20:00:00-07:00",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["allowed"] is True
    assert out["remaining"]["non-concentrated"] == 28500 - 14000 - 7000
    assert out["violations"] == []


def test_state_remaining_and_age(write):
    cart = write("cart.json", [{"category": "concentrate", "net_weight_mg": 1500}])
    state = write("state.json", {"concentrate": 1000})
    result = run(
        "check", "--jurisdiction", "CO", "--customer", "medical", "--age", "19", "--state-remaining", state,
        "--cart", cart, "--at", "2025-06-14T12:00:00Z",
    )  # fmt: skip
    assert result.returncode == 1
    rules = {v["rule"] for v in json.loads(result.stdout)["violations"]}
    assert rules == {"state-allotment"}
    cart = write("cart2.json", [{"category": "concentrate", "net_weight_mg": 2500}])
    result = run(
        "check", "--jurisdiction", "CO", "--customer", "medical", "--age", "19", "--cart", cart,
        "--at", "2025-06-14T12:00:00Z",
    )  # fmt: skip
    assert {v["rule"] for v in json.loads(result.stdout)["violations"]} == {"co-med-concentrate-under-21"}


def test_volume_ml_is_converted_to_microlitres(write):
    # WA: 72 fl oz liquid infused = 2129.294 ml after rounding down.
    cart = write("cart.json", [{"category": "beverage", "volume_ml": 2129.294}])
    assert run("check", "--jurisdiction", "WA", "--customer", "adult", "--cart", cart).returncode == 0
    cart = write("cart2.json", [{"category": "beverage", "volume_ml": 2129.295}])
    assert run("check", "--jurisdiction", "WA", "--customer", "adult", "--cart", cart).returncode == 1


@pytest.mark.parametrize(
    "files, extra, complaint",
    [
        ({"cart.json": "not json"}, [], "not valid JSON"),
        ({"cart.json": {"category": "flower"}}, [], "JSON list"),
        ({"cart.json": [{"net_weight_mg": 5}]}, [], "category"),
        ({"cart.json": [{"category": "flower", "net_weight_mg": -5}]}, [], "net_weight_mg"),
        ({"cart.json": [{"category": "flower", "net_weight_mg": 1.5}]}, [], "net_weight_mg"),
        ({"cart.json": [{"category": "flower", "weight": 5}]}, [], "unknown field"),
        ({"cart.json": [], "history.json": [{"category": "flower"}]}, ["--history"], "need 'at'"),
        (
            {"cart.json": [], "history.json": [{"category": "flower", "at": "2025-06-14T10:00:00"}]},
            ["--history"],
            "UTC offset",
        ),
        ({"cart.json": [], "state.json": {"nope": 5}}, ["--state-remaining"], "no bucket"),
    ],
)
def test_bad_input_exits_2_with_the_reason(write, files, extra, complaint):
    paths = {name: write(name, data) for name, data in files.items()}
    args = ["check", "--jurisdiction", "MI", "--customer", "medical", "--cart", paths["cart.json"]]
    for flag in extra:
        args += [flag, paths["history.json" if flag == "--history" else "state.json"]]
    result = run(*args)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--jurisdiction", "XX", "--customer", "adult", "--cart", "cart.json"],
        ["check", "--jurisdiction", "CA", "--customer", "tourist", "--cart", "cart.json"],
        ["check", "--jurisdiction", "CA", "--customer", "adult"],
        ["check", "--jurisdiction", "CA", "--customer", "adult", "--cart", "/nonexistent/cart.json"],
        ["check", "--jurisdiction", "CA", "--customer", "adult", "--cart", "cart.json", "--at", "yesterday"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_exit_2(write, args):
    cart = write("cart.json", [])
    args = [cart if a == "cart.json" else a for a in args]
    result = run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_show_prints_rules_with_sources():
    result = run("show", "--jurisdiction", "NJ")
    assert result.returncode == 0
    assert "New Jersey" in result.stdout
    assert "https://www.nj.gov/cannabis/adult-personal/" in result.stdout
    assert "DISPUTED" in result.stdout
    result = run("show", "--jurisdiction", "or", "--json")
    data = json.loads(result.stdout)
    assert data["confirmed"] is False and data["warnings"]
    assert all(r["source"] for r in data["rules"])
    assert run("show", "--jurisdiction", "ZZ").returncode == 2


def test_main_is_callable_in_process(write, capsys):
    cart = write("cart.json", [{"category": "edible", "thc_mg": 100, "quantity": 5}])
    assert main(["check", "--jurisdiction", "IL", "--customer", "adult", "--cart", cart]) == 0
    assert json.loads(capsys.readouterr().out)["remaining"]["infused"] == 0
