"""A throwaway PostgreSQL server for the test suite and the benchmark.

Both need a real server (the loader's behaviour depends on COPY, partitioning,
advisory locks and crash recovery, none of which a mock reproduces), and both
must run on a bare machine with only Debian's server binaries installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Debian's layout: one directory of server binaries per installed major version.
DEBIAN_BINDIRS = Path("/usr/lib/postgresql")

# Settings that make a disposable cluster quick to start and roomy enough for
# an SF1 load without checkpoints in the middle of it.
BASE_SETTINGS: Mapping[str, str] = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "50",
    "shared_buffers": "256MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "maintenance_work_mem": "256MB",
    "work_mem": "64MB",
    "log_min_messages": "warning",
    "logging_collector": "off",
}


class DevServerError(RuntimeError):
    """The throwaway server could not be created or started."""


def _major(bindir: Path) -> tuple[int, ...]:
    """The version of a /usr/lib/postgresql/<version>/bin directory, for sorting."""
    try:
        return tuple(int(part) for part in bindir.parent.name.split("."))
    except ValueError:
        return (-1,)


def find_bindir() -> Path:
    """Locate initdb/pg_ctl: PG_BINDIR, then Debian's newest versioned directory, then PATH."""
    env = os.environ.get("PG_BINDIR")
    candidates = [Path(env)] if env else []
    candidates.extend(sorted(DEBIAN_BINDIRS.glob("*/bin"), key=_major, reverse=True))
    for cand in candidates:
        if (cand / "initdb").exists() and (cand / "pg_ctl").exists():
            return cand
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise DevServerError("PostgreSQL server binaries (initdb, pg_ctl) not found; set PG_BINDIR")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_server_user() -> list[str]:
    # initdb refuses to run as root, so a root caller hands the cluster to the
    # postgres account; anyone else owns their cluster directly.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"]
    return []


@dataclass
class DevServer:
    """A running cluster in a private directory; connect through ``dsn``."""

    root: Path
    port: int
    bindir: Path
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def logfile(self) -> Path:
        return self.root / "server.log"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"

    def _run(self, *args: str) -> None:
        cmd = [*_as_server_user(), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise DevServerError(
                f"{' '.join(args[:2])} failed ({proc.returncode}): "
                f"{proc.stderr.strip()}\n{log[-2000:]}"
            )

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        opts = {**BASE_SETTINGS, **self.settings}
        opts["port"] = str(self.port)
        opts["unix_socket_directories"] = str(self.socket_dir)
        with (self.datadir / "postgresql.auto.conf").open("a") as conf:
            for key, value in opts.items():
                conf.write(f"{key} = '{value}'\n")
        self._run(
            str(self.bindir / "pg_ctl"),
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.datadir),
            "-l",
            str(self.logfile),
        )

    def stop(self) -> None:
        with contextlib.suppress(DevServerError):
            self._run(str(self.bindir / "pg_ctl"), "stop", "-m", "fast", "-D", str(self.datadir))


@contextlib.contextmanager
def devserver(
    settings: Mapping[str, str] | None = None, base_dir: str | None = None
) -> Iterator[DevServer]:
    """Start a fresh cluster on a free port; remove it completely on exit."""
    root = Path(tempfile.mkdtemp(prefix="etl-pg-", dir=base_dir))
    try:
        (root / "sock").mkdir()
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(root / "sock", "postgres", "postgres")
        last: DevServerError | None = None
        for _attempt in range(3):
            server = DevServer(root, free_port(), find_bindir(), dict(settings or {}))
            try:
                server.start()
            except DevServerError as exc:  # a port race: someone took it first
                last = exc
                shutil.rmtree(server.datadir, ignore_errors=True)
                time.sleep(0.2)
                continue
            try:
                yield server
            finally:
                server.stop()
            return
        raise DevServerError(f"could not start a throwaway server: {last}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
