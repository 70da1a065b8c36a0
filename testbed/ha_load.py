"""A write load through pgBouncer for the HA checks, and what it saw.

Each client of the load inserts one row per transaction into ``ha_load``
(the load's name, the client, the member that took it) through the
pgBouncer of the host it runs on, and notes when each transaction was
acknowledged. A failed transaction (an error from pgBouncer, a lost
connection) is counted and the client connects again, so the load goes on
through a failover as an application with a retry loop would. Afterwards
the rows acknowledged are compared with the rows the new leader has:
``lost`` are commits a client was told of that the cluster no longer holds.

The script itself runs on a test host (Debian's python3 and psycopg2, which
the postgresql role installs); the controller side copies it there, starts
it in the background and reads its report:

    load = ha_load.WriteLoad(client_host="wops-mol-ha-2", name="kill9", password=pw)
    load.start(clients=4, seconds=40)
    ...  # the fault
    seen = load.result()          # waits for the end
    lost = seen.lost(stored_ids)  # ids the leader has
"""

from __future__ import annotations

import contextlib
import importlib
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REMOTE = "/root/ha_load.py"
TABLE = "ha_load"
# Through the host's own pgBouncer, TLS checked against the project CA (the
# certificate names 127.0.0.1).
DSN = ("host=127.0.0.1 port={port} dbname=warehouse user=etl sslmode=verify-full "
       "sslrootcert=/etc/pgbouncer/tls/ca.crt connect_timeout=2 application_name=ha_load")
CREATE = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, load text NOT NULL, "
          "client int NOT NULL, server text DEFAULT host(inet_server_addr()), "
          "at timestamptz DEFAULT clock_timestamp()); "
          f"GRANT SELECT, INSERT ON {TABLE} TO etl; "
          f"GRANT USAGE ON SEQUENCE {TABLE}_id_seq TO etl")


# ----------------------------------------------------------- on the test host

@dataclass
class _Run:
    psycopg2: Any
    dsn: str
    name: str
    deadline: float
    out: dict[str, Any]
    lock: threading.Lock
    stop_file: str


def _client(run: _Run, number: int) -> None:
    psycopg2, dsn, name, deadline = run.psycopg2, run.dsn, run.name, run.deadline
    acked: list[tuple[float, int, str]] = []
    failed: list[tuple[float, str]] = []
    conn = None
    insert = f"INSERT INTO {TABLE} (load, client) VALUES (%s, %s) RETURNING id, server"  # noqa: S608
    stop = Path(run.stop_file)
    checked = 0.0
    while time.time() < deadline:
        if time.time() - checked > 0.5:
            checked = time.time()
            if stop.exists():
                break
        try:
            if conn is None:
                conn = psycopg2.connect(dsn)
                conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(insert, (name, number))
                row = cur.fetchone()
            acked.append((time.time(), int(row[0]), str(row[1])))
        except Exception as error:  # every failure counts, the load goes on
            failed.append((time.time(), str(error).strip().splitlines()[0][:200]))
            if conn is not None:
                with contextlib.suppress(Exception):  # the connection is gone either way
                    conn.close()
            conn = None
            time.sleep(0.2)
    if conn is not None:
        conn.close()
    with run.lock:
        run.out["acked"].extend(acked)
        run.out["failed"].extend(failed)


def main(argv: list[str]) -> None:
    """On the test host: ``ha_load.py <name> <clients> <seconds> <pgbouncer port> <report>``.

    The clients stop after ``seconds``, or once ``<report>.stop`` exists.
    """
    name, clients, seconds, port, report = argv
    psycopg2 = importlib.import_module("psycopg2")
    out: dict[str, Any] = {"acked": [], "failed": [], "started": time.time()}
    lock = threading.Lock()
    deadline = time.time() + float(seconds)
    run = _Run(psycopg2, DSN.format(port=port), name, deadline, out, lock, report + ".stop")
    threads = [threading.Thread(target=_client, args=(run, n)) for n in range(int(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out["ended"] = time.time()
    Path(report + ".tmp").write_text(json.dumps(out))
    Path(report + ".tmp").rename(report)


# ------------------------------------------------------------- on the controller

def write_pgpass(host: str, port: int, password: str) -> None:
    """etl's password for the host's pgBouncer in root's ~/.pgpass (0600), from standard input."""
    subprocess.run(["podman", "exec", "-i", host, "sh", "-c", "umask 077; cat > /root/.pgpass"],
                   input=f"127.0.0.1:{port}:*:etl:{password}\n", text=True, check=True,
                   capture_output=True)


@dataclass
class Seen:
    """What the load saw: acknowledged (time, id, server) and failed (time, error)."""

    acked: list[tuple[float, int, str]]
    failed: list[tuple[float, str]]
    started: float
    ended: float
    errors: dict[str, int] = field(default_factory=dict)

    def lost(self, stored: set[int]) -> list[int]:
        """Acknowledged ids the cluster does not hold."""
        return sorted(i for _, i, _ in self.acked if i not in stored)

    def first_ack_after(self, moment: float, server: str) -> float | None:
        """When ``server`` (an address) first acknowledged a write after ``moment`` (host clock)."""
        after = [t for t, _, by in self.acked if t > moment and by == server]
        return min(after) if after else None

    def failed_after(self, moment: float) -> int:
        return sum(1 for t, _ in self.failed if t >= moment)

    def acked_between(self, start: float, end: float) -> int:
        return sum(1 for t, _, _ in self.acked if start <= t < end)


class WriteLoad:
    """The load, run on ``client_host`` (a podman test host) through its pgBouncer."""

    def __init__(self, client_host: str, name: str, password: str, port: int) -> None:
        self.host = client_host
        self.name = name
        self.port = port
        self.report = f"/root/ha_load-{name}.json"
        self._password = password

    def _exec(self, *argv: str, stdin: str | None = None) -> str:
        return subprocess.run(["podman", "exec", "-i", self.host, *argv], input=stdin,
                              capture_output=True, text=True, check=True).stdout

    def start(self, clients: int, seconds: float) -> None:
        """Copy the script and etl's password file (0600, no argument carries it), and start."""
        self._exec("sh", "-c", f"cat > {REMOTE}", stdin=Path(__file__).read_text())
        write_pgpass(self.host, self.port, self._password)
        self._exec("rm", "-f", self.report, self.report + ".stop")
        subprocess.run(["podman", "exec", "-d", self.host, "python3", REMOTE, self.name,
                        str(clients), str(seconds), str(self.port), self.report], check=True)

    def stop(self) -> None:
        """End the load now (it ends by itself after the seconds given to start())."""
        self._exec("touch", self.report + ".stop")

    def now(self) -> float:
        """The test host's clock (the load's timestamps are on it)."""
        return float(self._exec("date", "+%s.%N").strip())

    def result(self, timeout: float = 180) -> Seen:
        """Wait for the report and read it."""
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(["podman", "exec", self.host, "cat", self.report],
                                  capture_output=True, text=True, check=False)
            if done.returncode == 0:
                data = json.loads(done.stdout)
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the load on {self.host} wrote no report in {timeout} s")
            time.sleep(2)
        errors: dict[str, int] = {}
        for _, text in data["failed"]:
            errors[text] = errors.get(text, 0) + 1
        return Seen(acked=[(float(t), int(i), str(s)) for t, i, s in data["acked"]],
                    failed=[(float(t), str(e)) for t, e in data["failed"]],
                    started=float(data["started"]), ended=float(data["ended"]), errors=errors)


if __name__ == "__main__":
    main(sys.argv[1:])
