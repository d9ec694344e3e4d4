"""``storehub hq``: run headquarters, hash a staff password, or write the NATS configuration of a chain."""

from __future__ import annotations

import argparse
import getpass
import logging
import secrets
import sys
from pathlib import Path

from hub.config import ConfigError
from hub.hq.auth import hash_password
from hub.hq.config import load_hq_config
from hub.hq.localservers import python_deps_missing
from hub.hq.natsconf import hq_server_config, store_leaf_config
from hub.hq.service import Headquarters, announce


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="storehub hq", description="Headquarters of a chain of stores.")
    sub = p.add_subparsers(dest="command")
    r = sub.add_parser("run", help="run HQ (the default)")
    r.add_argument("--config", default="hq.toml")
    r.add_argument("--log-level", default="INFO")
    sub.add_parser("hash-password", help="read a password, print its scrypt hash for [[staff]] in hq.toml")
    n = sub.add_parser("nats-config", help="write HQ's nats-server config and one leaf config per store")
    n.add_argument("--chain", required=True)
    n.add_argument("--stores", required=True, help="store ids, comma-separated")
    n.add_argument("--hq-host", default="hq.example.com", help="how stores reach HQ's leaf port")
    n.add_argument("--out", default=".", help="directory for the files")
    n.add_argument("--store-dir", default="/var/lib/nats/jetstream")
    n.add_argument("--tls-cert", default="")
    n.add_argument("--tls-key", default="")
    n.add_argument("--tls-ca", default="")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("--") and argv[0] != "--help"):
        argv = ["run", *argv]  # `storehub hq --config hq.toml` runs HQ
    args = _parser().parse_args(argv)
    if args.command == "hash-password":
        pw = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass("Password: ")
        if len(pw) < 10:
            print("storehub hq: use at least 10 characters", file=sys.stderr)
            return 2
        print(hash_password(pw))
        return 0
    if args.command == "nats-config":
        return _nats_config(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    import anyio

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("nats").setLevel(logging.WARNING)
    missing = python_deps_missing()
    if missing:
        print(
            f"storehub hq: missing Python packages {missing}: pip install 'storehub[chain]'", file=sys.stderr
        )
        return 2
    try:
        cfg = load_hq_config(args.config)
    except ConfigError as exc:
        print(f"storehub hq: configuration refused: {exc}", file=sys.stderr)
        return 2

    anyio.run(Headquarters(cfg).run, announce, backend="asyncio")
    return 0


def _nats_config(args: argparse.Namespace) -> int:

    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    passwords = {s: secrets.token_urlsafe(18) for s in stores}
    hq_pw = secrets.token_urlsafe(18)
    (out / "nats-hq.conf").write_text(
        hq_server_config(
            args.chain,
            hq_password=hq_pw,
            store_passwords=passwords,
            store_dir=args.store_dir,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_ca=args.tls_ca,
        )  # fmt: skip
    )
    for s in stores:
        (out / f"nats-leaf-{s}.conf").write_text(
            store_leaf_config(args.chain, s, password=passwords[s], hq_host=args.hq_host, tls_ca=args.tls_ca)
        )
    print(f"wrote {out / 'nats-hq.conf'} and {len(stores)} leaf configs; keep these files secret (0600)")
    print(f'hq.toml [nats]: user = "hq", password = "{hq_pw}"')
    for s in stores:
        print(f'store {s} store.toml [chain]: store_id = "{s}", user = "{s}", password = "{passwords[s]}"')
    for f in out.glob("nats-*.conf"):
        f.chmod(0o600)
    return 0
