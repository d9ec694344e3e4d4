"""Where the hub's time goes, from the py-spy stacks ``python -m bench --profile DIR`` records (raw format,
one line per distinct stack per thread: ``thread (0x…);frame;…;frame COUNT``).

    python -m bench.profile_summary FILE [--rate 250] [--focus FUNC] [--per N] [--top 30]

Prints samples per thread (the trio thread and the store writer's worker apart), then for the busiest
thread, or for the stacks through ``--focus`` (a substring of ``function (file:line)``), the functions with
the largest share: inclusive (the function or anything it called was on the CPU) and self. With ``--per N``
(how many operations the window held, e.g. the load generator's scan count) a share is also given as
microseconds per operation: samples / rate / N.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^():]+?)(?::\d+)?\)$")


def parse(path: Path) -> list[tuple[str, list[str], int]]:
    """[(thread, frames root first, samples)]."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        frames = m.group(1).split(";")
        thread = ""
        while frames and (frames[0].startswith("thread ") or frames[0].startswith("process ")):
            thread = frames.pop(0) if frames[0].startswith("thread ") else thread
            if frames and frames[0].startswith("process "):
                frames.pop(0)
        out.append((thread, frames, int(m.group(2))))
    return out


def label(frame: str) -> str:
    """``function (file:line)`` -> ``function (shortened file)``: one entry per function, not per line."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", "/hub/", "/actors/", "/drivers/", "/bench/", "lib/python3.11/"):
        k = path.rfind(marker)
        if k >= 0:
            path = path[k + len(marker) :] if marker.endswith("/") and marker[0] != "/" else path[k + 1 :]
            break
    return f"{m.group('fn')} ({path})"


def shares(stacks: list[tuple[list[str], int]]) -> tuple[Counter[str], Counter[str], int]:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for frames, n in stacks:
        total += n
        names = [label(f) for f in frames]
        for name in set(names):
            inclusive[name] += n
        if names:
            own[names[-1]] += n
    return inclusive, own, total


# The hot path's steps, each a rule over one stack (function names as ``label`` prints them); the first
# rule that matches takes the sample. Trio's scheduler waiting in epoll is idle, not a step. Names of both the
# 5efca09 layout (hub/ws_server.py) and hub/live/ (issue 13) are listed; a step whose code moves needs its names here.
HOT_PATH: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (step, where it runs, substrings any of which must be in the stack; "=" prefix: the leaf frame)
    ("idle: epoll wait", "trio", ("=EpollIOManager.get_events", "=EpollIOManager._epoll_wait")),
    ("snapshot: build + JSON encode", "trio", ("Topic.encoded",)),
    (
        "snapshot: send (wsproto + socket)",
        "trio",
        ("Connection._snapshot_sender", "Connection._send_snapshots"),
    ),
    ("reply: send (wsproto + socket)", "trio", ("Connection._sender",)),
    ("frames in: read + parse (wsproto)", "trio", ("WebSocketConnection._reader_task",)),
    ("scan: whole-state encode of RegisterSale", "trio", ("_save (>encode (",)),
    (
        "scan: reply frame + StoredReply encode",
        "trio",
        ("Request.commit_behind>encode_bytes",),
    ),
    ("scan: write-behind hand-off", "trio", ("Request.commit_behind",)),
    ("scan: publish (topic bump)", "trio", ("RegisterActor.publish",)),
    ("scan: limits decision", "trio", ("_limit_guard (",)),
    ("scan: order-hold check", "trio", ("cart_refusal (",)),
    ("scan: cart transition", "trio", ("add_package (hub/domain/cart.py)",)),
    (
        "scan: reads (package, product)",
        "trio",
        ("_add_package (>package (", "_add_package (>product ("),
    ),
    ("scan: classify", "trio", ("classify (",)),
    ("scan: handler, rest", "trio", ("_add_package (",)),
    ("check-in handler", "trio", ("apply_check_in (", "check_in_licence (", "parse_licence (")),
    ("pay handler (trio side)", "trio", ("pay (hub/sale/pay.py)",)),
    ("other handlers (scale, weigh)", "trio", ("weigh_line (", "demo_scale (")),
    ("actor: dedup read, loaders, checkpoint", "trio", ("RegisterActor._handle",)),
    ("actor: mailbox loop", "trio", ("serve_mailbox",)),
    ("connection: decode", "trio", ("decode_command", "Session.decode")),
    ("connection: fingerprint (json + sha256)", "trio", ("fingerprint (hub/",)),
    ("connection: dedup read", "trio", ("Connection._deduplicated", "Session._stored_reply")),
    (
        "connection: mailbox call + rest",
        "trio",
        ("Connection._handle_one", "Connection._run_command", "Connection._execute", "Session.receive"),
    ),
    ("writer: start worker thread (trio side)", "trio", ("StoreWriter.run",)),
    # py-spy sometimes sees a task's coroutine stack without its root: by what it is doing
    ("socket send/receive, task not seen", "trio", ("SocketStream.send_all", "_nonblocking_helper")),
    ("wsproto parse, task not seen", "trio", ("FrameProtocol.", "WSConnection.")),
    ("trio scheduler, rest", "trio", ("unrolled_run (",)),
    ("writer thread: sale commit (commit_sale)", "writer", ("commit_sale (",)),
    ("writer thread: cart write-behind puts", "writer", ("Request.commit_behind.<locals>.apply",)),
    ("writer thread: other commits", "writer", ("Request.commit.<locals>.apply",)),
    ("writer thread: txn commit (fsync) + batch", "writer", ("StoreWriter._run_batch",)),
    ("writer thread: hand back to trio", "writer", ("deliver_worker_fn_result",)),
    ("writer thread: idle/pool", "writer", ("WorkerThread._work",)),
)


def _matches(names: list[str], pattern: str) -> bool:
    if pattern.startswith("="):
        return bool(names) and names[-1].startswith(pattern[1:])
    if ">" in pattern:  # parent>child: child called directly from parent
        parent, child = pattern.split(">", 1)
        return any(
            a.startswith(parent) and b.startswith(child) for a, b in zip(names, names[1:], strict=False)
        )
    return any(pattern in n for n in names)


def steps(rows: list[tuple[str, list[str], int]]) -> tuple[Counter[str], dict[str, int]]:
    """Samples per hot-path step, and per place (trio thread, writer thread, other)."""
    per_step: Counter[str] = Counter()
    per_place: dict[str, int] = Counter()
    for thread, frames, n in rows:
        names = [label(f) for f in frames]
        place = (
            "trio"
            if "MainThread" in thread
            else "writer"
            if any("_run_batch" in x or "WorkerThread" in x for x in names)
            else "other"
        )
        per_place[place] += n
        for step, where, patterns in HOT_PATH:
            if where == place and any(_matches(names, pat) for pat in patterns):
                per_step[step] += n
                break
        else:
            per_step[f"{place}: unattributed"] += n
    return per_step, per_place


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile_summary", description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--rate", type=float, default=250.0, help="py-spy samples per second")
    ap.add_argument("--thread", default="", help="a substring of the thread label (default: the busiest)")
    ap.add_argument("--focus", action="append", default=[], help="keep only stacks through this function")
    ap.add_argument("--per", type=float, default=0.0, help="operations in the window: adds us per operation")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--steps", action="store_true", help="samples per hot-path step (HOT_PATH) instead")
    args = ap.parse_args(argv)
    rows = parse(Path(args.file))
    if args.steps:
        per_step, per_place = steps(rows)
        print(
            f"{sum(per_place.values())} samples at {args.rate:g}/s: "
            + ", ".join(f"{k} {v}" for k, v in per_place.items())
        )
        for step, _, _ in HOT_PATH:
            if per_step.get(step):
                place = step.split(":")[0] if step.startswith("writer thread") else "trio"
                share = (
                    100
                    * per_step[step]
                    / max(1, per_place.get("writer" if place.startswith("writer") else "trio", 0))
                )
                us = f"{per_step[step] / args.rate / args.per * 1e6:8.1f} us/op" if args.per else ""
                print(f"  {per_step[step]:6d} {share:5.1f} % of its thread {us}  {step}")
        for step, n in per_step.items():
            if step.endswith("unattributed"):
                print(f"  {n:6d}  {step}")
        return 0
    per_thread: Counter[str] = Counter()
    for thread, _, n in rows:
        per_thread[thread] += n
    grand = sum(per_thread.values())
    print(f"{grand} samples at {args.rate:g}/s = {grand / args.rate:.2f} s of CPU")
    for thread, n in per_thread.most_common():
        print(f"  {thread or '(one thread)'}: {n} samples, {100 * n / grand:.1f} %")
    thread = args.thread or per_thread.most_common(1)[0][0]
    stacks = [
        (f, n) for t, f, n in rows if args.thread == "" and t == thread or args.thread and args.thread in t
    ]
    thread_total = sum(n for _, n in stacks)
    if args.focus:
        stacks = [(f, n) for f, n in stacks if any(x in fr for x in args.focus for fr in f)]
    inclusive, own, total = shares(stacks)
    print(
        f"\n{'stacks through ' + ' | '.join(args.focus) if args.focus else 'all stacks'} of {thread or 'the thread'}: "
        f"{total} samples, {100 * total / max(1, thread_total):.1f} % of the thread"
    )

    def row(name: str, n: int) -> str:
        us = f"{n / args.rate / args.per * 1e6:9.1f} us/op" if args.per else ""
        return f"  {100 * n / max(1, total):5.1f} % {100 * n / max(1, thread_total):5.1f} %T {us}  {name}"

    print("inclusive (share of these stacks, share of the thread)")
    for name, n in inclusive.most_common(args.top):
        print(row(name, n))
    print("self")
    for name, n in own.most_common(args.top):
        print(row(name, n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
