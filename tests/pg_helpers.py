"""A real PostgreSQL server for the tests: Debian's ``postgresql`` binaries, a new cluster in a
temporary folder, listening on 127.0.0.1 at a free port and on a socket in that folder, torn down
after. The server refuses to run as root: when the tests run as root it runs as the ``postgres``
system user the Debian package makes (or ``nobody``), through ``setpriv``.

    server = PgServer.start_new()   # initdb + postgres; server.url: postgresql://...; socket in server.sockets
    server.stop(); server.start(); server.restart(); server.close()
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: Where Debian's postgresql package puts the server binaries (postgresql-15 on bookworm).
PG_VERSIONS = ("15", "16", "17", "14", "13")
#: Seconds to wait for the server to start or stop.
WAIT = 60.0
USER = "facelivt"
DATABASE = "facelivt_test"


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``, or None when the server is not installed."""
    for version in PG_VERSIONS:
        folder = Path(f"/usr/lib/postgresql/{version}/bin")
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    return None


SKIP_REASON = "PostgreSQL server binaries not installed: apt-get install postgresql"


def _run_as() -> list[str]:
    """The command prefix that runs the server as a user it accepts (not root)."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    raise RuntimeError("running as root and there is no 'postgres' or 'nobody' user to run PostgreSQL as")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One PostgreSQL cluster in ``folder``: :meth:`start`, :meth:`stop`, :meth:`restart`, :meth:`close`."""

    def __init__(self, bin_dir: Path, folder: Path) -> None:
        self.bin = bin_dir
        self.folder = folder
        self.data = folder / "data"
        self.sockets = folder / "sock"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = folder / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    @classmethod
    def start_new(cls, folder: Path | None = None) -> "PgServer":
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise FileNotFoundError(SKIP_REASON)
        folder = Path(folder or tempfile.mkdtemp(prefix="facelivt-pg-"))
        server = cls(bin_dir, folder)
        server.init()
        server.start()
        server.execute(f"CREATE DATABASE {DATABASE}", database="postgres")
        return server

    def init(self) -> None:
        self.sockets.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o777)
        os.chmod(self.sockets, 0o777)
        subprocess.run([*_run_as(), str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "-A", "trust",
                        "--no-sync", "-E", "UTF8", "--locale=C"], check=True, capture_output=True, timeout=WAIT)

    def start(self) -> None:
        """Start the server (again) on the same port; returns once it accepts connections."""
        assert self.proc is None, "already running"
        log = open(self.log, "ab")
        cmd = [*_run_as(), str(self.bin / "postgres"), "-D", str(self.data), "-k", str(self.sockets),
               "-p", str(self.port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
               "-c", "max_connections=60", "-c", "shared_buffers=16MB"]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + WAIT
        while not self.ready():
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"postgres exited at start: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start in {WAIT} s: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def ready(self) -> bool:
        result = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER,
                                 "-d", "postgres", "-q"], capture_output=True, timeout=WAIT)
        return result.returncode == 0

    def stop(self) -> None:
        """Fast shutdown (clients are disconnected, open transactions rolled back)."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(WAIT)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def execute(self, sql: str, database: str = DATABASE) -> list[tuple]:
        """Run ``sql`` as the cluster's superuser, in autocommit; the rows it returns."""
        import psycopg

        with psycopg.connect(f"postgresql://{USER}@127.0.0.1:{self.port}/{database}", autocommit=True) as con:
            cur = con.execute(sql)
            return cur.fetchall() if cur.description else []

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
