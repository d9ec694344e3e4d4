"""``storehub report``: the Z report and the opening-of-day readiness, straight from the store.

The store is opened read-only, so this runs beside a live hub (LMDB allows readers in other processes).

    storehub report eod --date 2026-03-14 [--format html|csv|json] [--register R1] [--data DIR | --config FILE]
    storehub report readiness [--data DIR | --config FILE]

Exit codes: 0 ok (for readiness: ready to open), 1 not ready / the report does not tie out, 2 usage errors.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import lmdb

from hub.backoffice.readiness import readiness, render_text
from hub.backoffice.records import day_reports
from hub.config import ConfigError, StoreConfig, load_config
from hub.demo import demo_config
from hub.domain.eod import build_eod_report, render_csv, render_html, render_json
from hub.store.env import TABLES, Store, StoreVersionError
from hub.store.migrations import open_for_reading


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="storehub report", description="End-of-day and readiness reports.")
    sub = p.add_subparsers(dest="report", required=True)
    e = sub.add_parser("eod", help="the end-of-day (Z) report for a store-local date")
    e.add_argument("--date", required=True, help="YYYY-MM-DD, the store's local date")
    e.add_argument("--format", default="html", choices=["html", "csv", "json"])
    e.add_argument("--register", default="", help="one register's report (default: the store's)")
    e.add_argument("--output", "-o", help="write to this file instead of standard output")
    r = sub.add_parser("readiness", help="is the store ready to open? problems in plain words")
    for q in (e, r):
        q.add_argument("--data", help="data directory (default: from --config, else ./storehub-data)")
        q.add_argument("--config", help="store.toml")
    return p


def _config(args: argparse.Namespace) -> StoreConfig:
    if args.config:
        cfg = load_config(args.config)
    else:
        # without a store.toml the demo store's identity is assumed (its zone decides the business day)
        cfg = demo_config(args.data or "storehub-data")
    if args.data:
        cfg.storage.data_dir = args.data
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = _config(args)
    except ConfigError as exc:
        print(f"storehub report: {exc}", file=sys.stderr)
        return 2
    path = Path(cfg.storage.data_dir)
    if not (path / "data.mdb").exists():
        print(f"storehub report: no store at {path} (give --data or --config)", file=sys.stderr)
        return 2
    try:
        store = open_for_reading(path, map_size=cfg.storage.map_size_mb << 20)
        _reopen_tables(store)
    except lmdb.Error as exc:
        print(f"storehub report: cannot open the store at {path}: {exc}", file=sys.stderr)
        return 2
    except StoreVersionError as exc:
        print(f"storehub report: {exc}", file=sys.stderr)
        return 2
    try:
        if args.report == "eod":
            return _eod(args, cfg, store)
        return _readiness(cfg, store)
    finally:
        store.close()


def _reopen_tables(store: Store) -> None:
    """Table handles opened inside an aborted read transaction are closed with it (LMDB: a handle opened
    in a transaction that aborts is discarded), so open them again, each in its own committed one."""

    for name in TABLES:
        try:
            store.tables[name] = store.env.open_db(name.encode(), create=False)
        except lmdb.NotFoundError:
            store.tables.pop(name, None)


def _eod(args: argparse.Namespace, cfg: StoreConfig, store: object) -> int:

    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        print("storehub report: --date is YYYY-MM-DD", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    reports = day_reports(store, day, cfg.store.time_zone, now=now)  # type: ignore[arg-type]
    report = reports.store
    if args.register:
        report = next((r for r in reports.registers if r.scope == args.register), None) or build_eod_report(
            day, cfg.store.time_zone, sales=(), generated_at=now, register_id=args.register
        )
    if args.format == "html":
        text = render_html(report, cfg.store.name)
    elif args.format == "csv":
        text = render_csv(report)
    else:
        text = render_json(report).decode() + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if not report.tie_out.ok:
        print(f"storehub report: {report.tie_out.sentence}", file=sys.stderr)
        return 1
    return 0


def _readiness(cfg: StoreConfig, store: object) -> int:

    r = readiness(store, cfg, now=datetime.now(UTC))  # type: ignore[arg-type]
    sys.stdout.write(render_text(r))
    return 0 if r.ready else 1


if __name__ == "__main__":
    raise SystemExit(main())
