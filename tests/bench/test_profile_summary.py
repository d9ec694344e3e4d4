"""``bench.profile_summary`` reads py-spy's raw stacks (``--format raw --threads``) and attributes samples to
the hot path's steps. The stack lines below are py-spy 0.4.3's output for the hub, shortened."""

from __future__ import annotations

from pathlib import Path

from bench.profile_summary import main, parse, steps

ROOT = (
    "thread (865): MainThread;_run_module_as_main (<frozen runpy>:198);<module> (hub/cli.py:302);"
    "run (trio/_core/_run.py:2532);unrolled_run (trio/_core/_run.py:2866)"
)
WORKER = (
    "thread (873): Trio thread 0;Thread._bootstrap (threading.py:1002);WorkerThread._work "
    "(trio/_core/_thread_cache.py:213);StoreWriter._run_batch (writer.py:230)"
)
RAW = "\n".join(
    [
        f"{ROOT};Connection._snapshot_sender (hub/ws_server.py:339);Topic.encoded (hub/app.py:95);"
        "RegisterActor.snapshot (actors/register.py:128);sale_snapshot (hub/sale/snapshot.py:40) 7",
        f"{ROOT};Connection._snapshot_sender (hub/ws_server.py:339);WebSocketConnection.send_message "
        "(trio_websocket/_impl.py:700) 3",
        f"{ROOT};RegisterActor.run (actors/register.py:60);serve_mailbox (hub/actor.py:260);RegisterActor._handle "
        "(actors/register.py:87);_add_package (hub/sale/service.py:640);_change_cart (hub/sale/service.py:660);"
        "_save (hub/sale/service.py:216);encode (hub/store/env.py:70) 2",
        f"{ROOT};RegisterActor.run (actors/register.py:60);RegisterActor._handle (actors/register.py:87);"
        "_add_package (hub/sale/service.py:636);package (hub/sale/inventory.py:40) 4",
        f"{ROOT.rsplit(';', 1)[0]};EpollIOManager.get_events (trio/_core/_io_epoll.py:242) 20",
        f"{WORKER};Request.commit.<locals>.apply (hub/commands.py:114);pay.<locals>.fn (hub/sale/service.py:1324);"
        "commit_sale (hub/sale/service.py:1263) 5",
        f"{WORKER} 15",
        "not a stack line",
    ]
)


def test_steps_split_threads_and_hot_path(tmp_path: Path) -> None:
    f = tmp_path / "hub.txt"
    f.write_text(RAW)
    rows = parse(f)
    assert len(rows) == 7
    assert rows[0][0] == "thread (865): MainThread" and rows[0][2] == 7
    per_step, per_place = steps(rows)
    assert per_place == {"trio": 36, "writer": 20}
    assert per_step["snapshot: build + JSON encode"] == 7
    assert per_step["snapshot: send (wsproto + socket)"] == 3
    assert per_step["scan: whole-state encode of RegisterSale"] == 2
    assert per_step["scan: reads (package, product)"] == 4
    assert per_step["idle: epoll wait"] == 20
    assert per_step["writer thread: sale commit (commit_sale)"] == 5
    assert per_step["writer thread: txn commit (fsync) + batch"] == 15


def test_cli_prints_us_per_operation(tmp_path: Path, capsys: object) -> None:
    f = tmp_path / "hub.txt"
    f.write_text(RAW)
    assert main([str(f), "--steps", "--rate", "1000", "--per", "10"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    # 7 samples at 1000/s over 10 operations = 700 us each
    assert "700.0 us/op  snapshot: build + JSON encode" in out
    assert main([str(f), "--thread", "MainThread", "--focus", "_add_package"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "6 samples" in out and "package (hub/sale/inventory.py)" in out
