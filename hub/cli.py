"""The ``storehub`` command."""

from __future__ import annotations

import argparse
import gc
import getpass
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from hub import audit, auth, demo, logs
from hub.config import ConfigError, StoreConfig, check_tls, load_config, preflight
from hub.demo import DEMO_PAIRING, DEMO_STAFF
from hub.errors import HubError, NoStore
from hub.signals import record_backup
from hub.store.env import StoreVersionError
from hub.store.migrations import open_store as open_and_upgrade

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.wiring import DemoOptions


def _add_data(p: argparse.ArgumentParser, *, create: bool = False) -> None:
    p.add_argument("--data", help="data directory (default: from --config, else ./storehub-data)")
    p.add_argument("--config", help="store.toml")
    if create:
        p.add_argument(
            "--create", action="store_true", help="make a new, empty store if there is none at the path"
        )


def open_store(path: Path, *, create: bool = False, may_create: bool = True) -> Any:
    """The store at ``path``; a new one only when ``create`` says so."""

    if not (path / "data.mdb").exists():
        if not create:
            hint = "; give --create to make a new, empty store there" if may_create else ""
            raise NoStore(f"no store at {path}{hint}")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NoStore(f"cannot create {path}: {exc.strerror}") from None
    return open_and_upgrade(path)


def data_dir_of(args: argparse.Namespace) -> Path:
    if args.data:
        return Path(args.data)
    if getattr(args, "config", None):
        return load_config(args.config).data_dir
    return Path("storehub-data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storehub", description="On-premises store hub for a licensed dispensary."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run a complete demo store on embedded defaults")
    d.add_argument("--data", help="data directory (default: a fresh temporary directory)")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--http-port", type=int, default=8080)
    d.add_argument("--ws-port", type=int, default=8765)
    d.add_argument("--scale-protocol", default="ad", choices=["ad", "mt-sics", "nci", "ohaus"])
    d.add_argument("--no-devices", action="store_true", help="start without simulated devices")
    d.add_argument("--no-sandbox", action="store_true", help="start without the state-system sandbox")
    d.add_argument("--log-level", default="INFO")
    d.add_argument("--chain", action="store_true", help="two demo stores and an HQ (nats-server, PostgreSQL)")
    d.add_argument("--chain-toml", help="a TOML file with a [chain] table: this demo store joins that chain")

    r = sub.add_parser("run", help="run the hub with a store.toml")
    r.add_argument("--config", required=True)
    r.add_argument("--log-level", default="INFO")

    b = sub.add_parser("backup", help="hot backup: a compacted copy of the store, taken while the hub runs")
    b.add_argument("dest")
    _add_data(b)

    a = sub.add_parser("audit", help="audit log tools")
    asub = a.add_subparsers(dest="audit_command", required=True)
    v = asub.add_parser("verify", help="walk the hash chain; exit 1 on any break")
    _add_data(v)

    s = sub.add_parser("staff", help="staff accounts")
    ssub = s.add_subparsers(dest="staff_command", required=True)
    sa = ssub.add_parser("add", help="add a staff member (asks for the PIN)")
    _add_data(sa, create=True)
    sa.add_argument("--id", required=True)
    sa.add_argument("--name", required=True)
    sa.add_argument("--role", required=True, choices=["budtender", "technician", "manager", "admin"])
    sa.add_argument("--pin", help="PIN (prompted when absent; avoid on shared shells)")

    pc = sub.add_parser("pairing-code", help="create a pairing code to enrol a browser as a register")
    _add_data(pc, create=True)
    pc.add_argument("--register", required=True)

    sub.add_parser("limits", help="purchase-limit tools (storehub limits check|show --help)", add_help=False)
    sub.add_parser("sandbox", help="run the state-system sandbox emulator", add_help=False)
    sub.add_parser("report", help="reports (readiness, eod)", add_help=False)
    sub.add_parser("import", help="import products and packages from CSV", add_help=False)
    sub.add_parser(
        "tls", help="TLS certificates for the store LAN (storehub tls init --help)", add_help=False
    )
    sub.add_parser("hq", help="headquarters of a chain (storehub hq --help)", add_help=False)
    return parser


# sub-commands implemented by feature modules, handed the rest of argv
DELEGATED = {
    "limits": "hub.limits_cli",
    "sandbox": "sandbox.server",
    "report": "hub.report_cli",
    "import": "hub.import_cli",
    "tls": "hub.tls_cli",
    "hq": "hub.hq.cli",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        import importlib

        try:
            module = importlib.import_module(DELEGATED[argv[0]])
        except ImportError as exc:
            print(f"storehub {argv[0]}: not available in this build ({exc})", file=sys.stderr)
            return 2
        try:
            return int(module.main(argv[1:]) or 0)
        except ConfigError as exc:
            print(f"storehub {argv[0]}: configuration refused: {exc}", file=sys.stderr)
            return 2
        except (NoStore, StoreVersionError) as exc:
            print(f"storehub {argv[0]}: {exc}", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    try:
        return int(COMMANDS[args.command](args) or 0)
    except ConfigError as exc:
        print(f"storehub: configuration refused: {exc}", file=sys.stderr)
        return 2
    except (NoStore, StoreVersionError) as exc:
        print(f"storehub {args.command}: {exc}", file=sys.stderr)
        return 2


def cmd_demo(args: argparse.Namespace) -> int:
    from hub import wiring  # lazily: every feature loads only for the subcommands that run a hub

    logs.setup(args.log_level)
    if args.chain:
        from hub.hq.demo import run_chain_demo  # lazily: the HQ of the chain demo loads only for it

        return run_chain_demo(args)
    data = args.data or tempfile.mkdtemp(prefix="storehub-demo-")
    cfg = demo.demo_config(data, host=args.host, http_port=args.http_port, ws_port=args.ws_port)
    if args.chain_toml:
        cfg = demo.join_chain(cfg, Path(args.chain_toml))
    options = wiring.DemoOptions(
        scale_protocol=args.scale_protocol, devices=not args.no_devices, sandbox=not args.no_sandbox
    )
    return run_hub(cfg, demo=options)


def cmd_run(args: argparse.Namespace) -> int:

    logs.setup(args.log_level)
    cfg = load_config(args.config)
    preflight(cfg)  # a host that does not resolve is said first
    check_tls(cfg)  # the demo may run plain on any address; a store may not by accident
    return run_hub(cfg)


def run_hub(cfg: StoreConfig, *, demo: DemoOptions | None = None) -> int:
    from hub import wiring  # lazily: every feature loads only for the subcommands that run a hub

    preflight(cfg)  # a bad path or host is "configuration refused: <field>", not a traceback
    hub = wiring.build(cfg, wiring.Features.store(demo))

    async def main_task() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run)
            settle_heap()
            _announce(hub, demo is not None)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    print(f"storehub: {signal.Signals(signum).name} received, shutting down", file=sys.stderr)
                    hub.stop()
                    break

    refused: list[BaseException] = []
    try:
        trio.run(main_task)
    except* StoreVersionError as group:  # a store newer than this code: said plainly, not a traceback
        refused.extend(group.exceptions)
    if refused:
        print(f"storehub: {refused[0]}", file=sys.stderr)
        return 2
    return 0


# allocations between two young collections (CPython's default is 700): a request allocates and frees many
# short-lived containers, few of them in cycles
YOUNG_COLLECTION_EVERY = 7000


def settle_heap() -> None:
    """Once the hub is up: what start-up built (catalogue, caches, actors, imported modules) lives as long as
    the process, so it is moved out of the collector's sight, and young collections run less often. Measured
    with 50 busy registers (bench, the collector's own callbacks, a 6 s window): the collector took 0.39 s of
    the window before (four full collections, each pausing every register for up to 47 ms), 0.23 s with the
    freeze alone and 0.09-0.10 s with the freeze and this threshold."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])


def _announce(hub: Hub, demo: bool) -> None:
    cfg = hub.config
    scheme = "https" if cfg.server.tls_cert else "http"
    host = cfg.server.host if cfg.server.host not in ("0.0.0.0", "::") else "localhost"
    lines = [
        "",
        f"  storehub: {cfg.store.name} ({cfg.store.jurisdiction}) is open",
        f"  Register:    {scheme}://{host}:{hub.http_port}/register/",
        f"  Back office: {scheme}://{host}:{hub.http_port}/backoffice/",
        f"  Live protocol: ws://{host}:{hub.ws_port}   Metrics: {scheme}://{host}:{hub.http_port}/metrics",
        f"  Data: {cfg.storage.data_dir}",
    ]
    if demo:
        lines.append("  Pairing codes: " + ", ".join(f"{r} = {c}" for r, c in DEMO_PAIRING.items()))
        lines.append(
            "  Demo staff (ID / PIN): " + ", ".join(f"{s} / {p} ({role})" for s, _, role, p in DEMO_STAFF)
        )
        if "P1" in DEMO_PAIRING and cfg.register("P1") is not None:
            lines.append(
                f"  Picker (handheld): {scheme}://{host}:{hub.http_port}/picker/  pairing code {DEMO_PAIRING['P1']}"
            )
        sandbox_url = hub.services.demo.sandbox_url
        if sandbox_url:
            lines.append(f"  State-system sandbox: {sandbox_url}")
    lines.append("  Ctrl-C to stop.")
    print("\n".join(lines), file=sys.stderr, flush=True)


def cmd_backup(args: argparse.Namespace) -> int:

    # the outcome goes beside the copies ([storage] backup_dir), where the hub's /metrics reads it
    status_dir = Path(args.dest).resolve().parent
    store = open_store(data_dir_of(args), may_create=False)
    try:
        dest = store.backup(args.dest)
    except FileExistsError as exc:
        print(f"storehub backup: {exc}", file=sys.stderr)
        record_backup(status_dir, ok=False, error=type(exc).__name__)
        return 2
    except Exception as exc:
        record_backup(status_dir, ok=False, error=type(exc).__name__)
        raise
    record_backup(status_dir, ok=True)
    print(f"backup written to {dest} ({(dest / 'data.mdb').stat().st_size} bytes)")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:

    store = open_store(data_dir_of(args), may_create=False)
    n, brk = audit.verify(store)
    if brk is None:
        print(f"audit log verified: {n} entries, chain intact")
        return 0
    print(f"AUDIT CHAIN BROKEN at entry {brk.seq}: {brk.problem} ({n} entries verified before it)")
    return 1


def cmd_staff(args: argparse.Namespace) -> int:

    store = open_store(data_dir_of(args), create=args.create)
    pin = args.pin or getpass.getpass("PIN for the new staff member: ")
    try:
        member = auth.new_staff(args.id, args.name, args.role, pin)
        with store.env.begin(write=True) as txn:
            auth.add_staff(txn, store, member, by=os.environ.get("USER", "cli"))
    except HubError as exc:
        print(f"storehub staff add: {exc.message}", file=sys.stderr)
        return 2
    print(f"staff member {args.id} ({args.role}) added")
    return 0


def cmd_pairing_code(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    store = open_store(data_dir_of(args), create=args.create)
    with store.env.begin(write=True) as txn:
        pc = auth.create_pairing_code(
            txn, store, args.register, by=os.environ.get("USER", "cli"), now=datetime.now(UTC)
        )
    print(f"pairing code for {pc.register_id}: {pc.code} (valid until {pc.expires_at:%H:%M} UTC)")
    return 0


COMMANDS = {
    "demo": cmd_demo,
    "run": cmd_run,
    "backup": cmd_backup,
    "audit": cmd_audit,
    "staff": cmd_staff,
    "pairing-code": cmd_pairing_code,
}

if __name__ == "__main__":
    raise SystemExit(main())
