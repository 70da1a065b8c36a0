#!/usr/bin/env python3
"""Write load for the HA checks: commits rows for a while, reconnecting after any error.

Runs on a test host (Debian's python3-psycopg2), copied there by the check:

    PGPASSWORD=... python3 ha_load.py 'host=a,b,c dbname=warehouse user=etl ...' 60 load1

Each worker commits one row at a time into ha_load (worker, seq) and keeps
the numbers PostgreSQL acknowledged. After an error (the primary died, the
connection was cut, the server is read-only) it counts one failed
transaction and connects again (libpq tries the hosts in turn and keeps the
one that takes writes: target_session_attrs=read-write in the conninfo).
At the end it prints one JSON object: per worker the acknowledged numbers,
the failed transactions, and the wall-clock times (time.time()) of the last
commit before the first failure and the first commit after the last one.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from typing import Any

# Debian's python3-psycopg2 on the test host (the controller's venv has psycopg 3).
import psycopg2  # type: ignore[import-untyped,import-not-found,unused-ignore]

RETRY_PAUSE = 0.2


def _connect(dsn: str, deadline: float) -> Any:
    while time.time() < deadline:
        try:
            conn = psycopg2.connect(dsn)
            conn.autocommit = False
            return conn
        except psycopg2.Error:
            time.sleep(RETRY_PAUSE)
    return None


def _worker(dsn: str, seconds: float, name: str, out: dict[str, Any]) -> None:
    deadline = time.time() + seconds
    acked: list[int] = []
    failed = 0
    last_ok: float | None = None
    last_ok_before_failure: float | None = None
    first_ok_after_failure: float | None = None
    failing = False
    seq = 0
    conn = _connect(dsn, deadline)
    while conn is not None and time.time() < deadline:
        seq += 1
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO ha_load (worker, seq) VALUES (%s, %s)", (name, seq))
            conn.commit()
        except psycopg2.Error:
            failed += 1
            if not failing:
                failing = True
                if last_ok_before_failure is None:
                    last_ok_before_failure = last_ok
            with contextlib.suppress(psycopg2.Error):
                conn.close()
            conn = _connect(dsn, deadline)
            continue
        last_ok = time.time()
        acked.append(seq)
        if failing:
            failing = False
            first_ok_after_failure = last_ok
    out[name] = {"acked": acked, "failed": failed,
                 "last_ok_before_failure": last_ok_before_failure,
                 "first_ok_after_failure": first_ok_after_failure}


def main(argv: list[str]) -> int:
    dsn, seconds, prefix = argv[0], float(argv[1]), argv[2]
    workers = int(argv[3]) if len(argv) > 3 else 4
    setup = _connect(dsn, time.time() + 30)
    if setup is None:
        print(json.dumps({"error": "no server took the connection"}))
        return 1
    with setup.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS ha_load (worker text, seq int, "
                    "at timestamptz DEFAULT clock_timestamp(), PRIMARY KEY (worker, seq))")
    setup.commit()
    setup.close()
    out: dict[str, Any] = {}
    threads = [threading.Thread(target=_worker, args=(dsn, seconds, f"{prefix}-{i}", out))
               for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"started": time.time() - seconds, "workers": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
