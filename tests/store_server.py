"""A throwaway PostgreSQL server for the store tests: initdb into a temporary folder, pg_ctl start on a
free local port, stopped and removed after the session.  Not a mock: the store's SQL and COPY run
against the real server.  (The server refuses to run as root: as root it runs as the ``postgres`` user.)"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def pg_bin(name: str) -> str | None:
    """The PostgreSQL program ``name`` (the newest installed version, else on PATH)."""
    for d in PG_BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    return shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``with Server() as url:`` a running server; ``url`` reaches its ``postgres`` database."""

    def __enter__(self) -> str:
        initdb, self.pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        if not initdb or not self.pg_ctl:
            raise RuntimeError("PostgreSQL is not installed (initdb, pg_ctl): apt-get install -y postgresql")
        self.root = Path(tempfile.mkdtemp(prefix="dealscore-pg-"))
        self.data = self.root / "data"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.root, "postgres")
        self.port = _free_port()
        subprocess.run([*self.as_user, initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                        "--no-sync"], check=True, capture_output=True)
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"),
                        "-w", "-t", "60", "start"], check=True, capture_output=True)
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def __exit__(self, *exc) -> None:
        subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
