"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, pg_ctl start and stop.

PostgreSQL refuses to run as root, and CI runs as root: there the server runs as the `postgres`
system user (runuser), in a folder under /tmp handed to it (pytest's own tmp folders are
root-only). Passwords are checked (scram-sha-256), so tests can see what a wrong one does.
A watchdog process stops the server and removes its folder when the test process ends, however
it ends (a killed pytest runs no teardown).
"""

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytest_postgresql.janitor import DatabaseJanitor

INSTALL = Path("/usr/lib/postgresql")
USER = "lethe"
PASSWORD = "test-only-Pa55word"
# Waits for EOF on stdin (the test process closed it, or died), then runs the stop command
# (argv[2:]) and removes the server's folder (argv[1]).
WATCHDOG = """
import shutil, subprocess, sys
sys.stdin.read()
subprocess.run(sys.argv[2:], stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


def _installed() -> list[Path]:
    """The installed servers' bin folders, newest first."""
    found = [p.parent for p in INSTALL.glob("*/bin/pg_ctl") if (p.parent / "initdb").exists()]
    return sorted(found, key=lambda bin: int(bin.parent.name), reverse=True)


def missing() -> str | None:
    """What is missing to run a server, saying how to install it; None when nothing is."""
    if not _installed():
        return f"no PostgreSQL server in {INSTALL}/*/bin: run `make install` (Debian's postgresql package)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no `postgres` user to run the server as (it refuses root): run `make install`"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """One running server; `database()` gives each test a fresh database on it."""

    def __init__(self, bin: Path) -> None:
        self.bin = bin
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.root = Path(tempfile.mkdtemp(prefix="lethe-pg-"))
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        self.port = 0
        stop = [*self.as_user, str(bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(self.root), *stop],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives a signal sent to the test's process group
        )

    def _run(self, *command: str | Path) -> None:
        done = subprocess.run(
            [*self.as_user, *map(str, command)],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        password_file = self.root / "password"
        password_file.write_text(PASSWORD)
        if self.as_user:
            shutil.chown(password_file, "postgres")
        self._run(
            self.bin / "initdb", "-D", self.data, "-U", USER, "--pwfile", password_file,
            "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync",
        )  # fmt: skip
        log = self.root / "log"
        for attempt in range(3):  # the free port may be taken before the server binds it
            self.port = _free_port()
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                self._run(self.bin / "pg_ctl", "-D", self.data, "-l", log, "-o", options, "-w", "start")
                return
            except RuntimeError:
                if attempt == 2:
                    tail = log.read_text()[-4000:] if log.exists() else ""
                    raise RuntimeError(f"PostgreSQL did not start; its log:\n{tail}") from None

    def stop(self) -> None:
        """Stop the server and remove its folder (the watchdog does both, then exits)."""
        assert self._watchdog.stdin is not None
        self._watchdog.stdin.close()
        self._watchdog.wait(180)

    def url(self, database: str, password: str = PASSWORD) -> str:
        return f"postgresql+psycopg://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    @contextmanager
    def database(self) -> Iterator[str]:
        """A new, empty database (dropped afterwards); yields its URL."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        janitor = DatabaseJanitor(user=USER, password=PASSWORD, host="127.0.0.1", port=self.port, dbname=name)
        with janitor:
            yield self.url(name)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started server (the newest installed), stopped and removed on exit; see `missing()`."""
    server = PostgresServer(_installed()[0])
    try:
        server.start()
        yield server
    finally:
        server.stop()
