"""`storehub tls init`: a certificate for the store's own listeners (wss:// and https:// on the LAN).

The store gets its own small certificate authority (kept beside store.toml, the key readable by the hub's
user only) and a server certificate it signs for the hub's addresses. Each register's browser trusts the
store's CA once (README: "TLS on the store LAN"); a renewed server certificate needs nothing more there.
Made with openssl, which every Debian store machine has.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path

from hub.config import ConfigError, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="storehub tls", description="TLS certificates for the store's listeners")
    sub = p.add_subparsers(dest="tls_command", required=True)
    i = sub.add_parser("init", help="make the store's CA and a server certificate for the hub's addresses")
    i.add_argument("--config", required=True, help="store.toml (the certificates go beside it, in tls/)")
    i.add_argument(
        "--name",
        action="append",
        default=[],
        help="another name or IP address registers use to reach the hub (repeatable)",
    )
    i.add_argument("--days", type=int, default=825, help="server certificate validity (default 825)")
    i.add_argument("--force", action="store_true", help="replace an existing server certificate")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"storehub: configuration refused: {exc}", file=sys.stderr)
        return 2
    openssl = shutil.which("openssl")
    if openssl is None:
        print("storehub tls: openssl is not installed (apt-get install openssl)", file=sys.stderr)
        return 2
    out = Path(args.config).resolve().parent / "tls"
    names = _names(cfg.server.host, args.name)
    if not names:
        print("storehub tls: give the name or address registers use: --name store-hub.lan", file=sys.stderr)
        return 2
    if (out / "store.crt").exists() and not args.force:
        print(f"storehub tls: {out / 'store.crt'} exists; --force replaces it", file=sys.stderr)
        return 2
    try:
        init(openssl, out, names, cfg.store.name, days=args.days)
    except subprocess.CalledProcessError as exc:
        print(f"storehub tls: openssl failed: {exc.stderr.strip() if exc.stderr else exc}", file=sys.stderr)
        return 1
    print(f"store CA:           {out / 'ca.crt'}   (install this on every register: README, TLS on the LAN)")
    print(f"server certificate: {out / 'store.crt'} for {', '.join(names)}")
    print("add to store.toml, under [server]:")
    print(f'  tls_cert = "{out / "store.crt"}"')
    print(f'  tls_key = "{out / "store.key"}"')
    return 0


def _names(host: str, extra: list[str]) -> list[str]:
    names: list[str] = []
    for n in [host, *extra]:
        n = n.strip().strip("[]")
        if n and n not in ("0.0.0.0", "::") and n not in names:
            names.append(n)
    return names


def _san(names: list[str]) -> str:
    parts = []
    for n in names:
        try:
            ipaddress.ip_address(n)
            parts.append(f"IP:{n}")
        except ValueError:
            parts.append(f"DNS:{n}")
    return ",".join(parts)


def init(openssl: str, out: Path, names: list[str], store_name: str, *, days: int = 825) -> None:
    """The store CA (made once, kept) and a server certificate for ``names`` signed by it."""
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    ca_key, ca_crt = out / "ca.key", out / "ca.crt"
    key, csr, crt = out / "store.key", out / "store.csr", out / "store.crt"
    cn = "".join(c for c in store_name if c.isalnum() or c in " .-_")[:48] or "storehub"

    def run(*argv: str) -> None:
        subprocess.run([openssl, *argv], check=True, capture_output=True, text=True)

    old = os.umask(0o077)  # keys are readable by the hub's user only
    try:
        if not ca_crt.exists():
            run(
                "req", "-x509", "-newkey", "rsa:3072", "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt),
                "-days", "3650", "-subj", f"/CN={cn} store CA",
                "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            )  # fmt: skip
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            f"/CN={names[0]}",
        )
        ext = out / "store.ext"
        ext.write_text(
            f"subjectAltName={_san(names)}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        )
        run(
            "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(crt), "-days", str(days), "-sha256", "-extfile", str(ext),
        )  # fmt: skip
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)
    finally:
        os.umask(old)
    os.chmod(ca_crt, 0o644)
    os.chmod(crt, 0o644)
