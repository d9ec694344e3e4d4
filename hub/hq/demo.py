"""``storehub demo --chain``: two demo stores and an HQ on this machine, with a local nats-server and a
throwaway PostgreSQL cluster, when they are installed; otherwise it says how to install them."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hub.hq.auth import hash_password
from hub.hq.localservers import INSTALL_HINT, NatsServer, Postgres, what_is_missing

CHAIN = "demo"
STORES = ("north", "south")
HQ_USER, HQ_PASSWORD = "admin", "demo-admin-password"


def _wait_for(proc: subprocess.Popen[bytes], log: Path, marker: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text("utf-8", "replace") if log.exists() else ""
        if marker in text:
            return text
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; see {log}")
        time.sleep(0.1)  # blocking-ok: a plain synchronous launcher, no event loop here
    raise TimeoutError(f"{proc.args!r} did not start within {timeout} s; see {log}")


def run_chain_demo(args: argparse.Namespace) -> int:
    missing = what_is_missing()
    if missing:
        print(f"storehub demo --chain: missing {', '.join(missing)}.\n{INSTALL_HINT}", file=sys.stderr)
        return 2
    work = Path(args.data or tempfile.mkdtemp(prefix="storehub-chain-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    nats = NatsServer(work / "nats", CHAIN, list(STORES)).start()
    pg = Postgres(fsync=False).start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        hq_conf = work / "hq.toml"
        stores_toml = "".join(
            f'[[stores]]\nid = "{s}"\nname = "Demo {s}"\ntime_zone = "America/Los_Angeles"\n\n'
            for s in STORES
        )
        hq_conf.write_text(
            f'[hq]\nchain = "{CHAIN}"\nname = "Demo chain HQ"\n\n[http]\nhost = "{args.host}"\nport = 0\n\n'
            f'[nats]\nurl = "{nats.url}"\nuser = "hq"\npassword = "{nats.hq_password}"\n\n'
            f'[postgres]\ndsn = "{pg.dsn}"\n\n{stores_toml}'
            f'[[staff]]\nuser = "{HQ_USER}"\nrole = "admin"\npassword_hash = "{hash_password(HQ_PASSWORD)}"\n'
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = work / "hq.log"
        with open(log, "wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "hub.cli", "hq", "run", "--config", str(hq_conf)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        text = _wait_for(procs[-1], log, "Ctrl-C")
        hq_url = next(
            line.split("Pages and API:")[1].split()[0]
            for line in text.splitlines()
            if "Pages and API:" in line
        )
        lines = [f"\n  storehub chain demo: HQ {hq_url}  (log in as {HQ_USER} / {HQ_PASSWORD})"]
        for store in STORES:
            chain_toml = work / f"chain-{store}.toml"
            chain_toml.write_text(
                f'[chain]\nchain = "{CHAIN}"\nstore_id = "{store}"\nnats_url = "{nats.url}"\n'
                f'user = "{store}"\npassword = "{nats.passwords[store]}"\n'
            )
            slog = work / f"store-{store}.log"
            with open(slog, "wb") as out:
                cmd = [sys.executable, "-m", "hub.cli", "demo", "--data", str(work / f"store-{store}"), "--host", args.host,
                       "--http-port", "0", "--ws-port", "0", "--no-devices", "--chain-toml", str(chain_toml)]  # fmt: skip
                procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env))
            stext = _wait_for(procs[-1], slog, "Ctrl-C to stop")
            reg = next(
                (ln.split("Register:")[1].strip() for ln in stext.splitlines() if "Register:" in ln), "?"
            )
            lines.append(f"  store {store}: register {reg}")
        lines += [
            f"  NATS {nats.url} (JetStream in {nats.workdir}), PostgreSQL port {pg.port}; logs in {work}",
            "  Set a price at HQ: curl -u admin:demo-admin-password -X PUT "
            f'{hq_url}api/catalogue/prices -d \'{{"scope": "*", "prices": {{"PRE-001": 1500}}}}\'',
            "  Ctrl-C to stop.",
        ]
        print("\n".join(lines), file=sys.stderr, flush=True)
        stop = False

        def on_signal(signum: int, frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while not stop and all(p.poll() is None for p in procs):
            time.sleep(0.3)  # blocking-ok: the launcher only waits
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        nats.stop()
        pg.destroy()
