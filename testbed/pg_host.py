"""PostgreSQL on a test host, as the checks read and drive it (through testinfra).

    count = int(pg_host.sql(db, "SELECT count(*) FROM warehouse.fact_sales"))
    pg_host.archive_current_wal(db)   # switch WAL and wait until it is archived
"""

from __future__ import annotations

import time
from typing import Any


def sql(host: Any, query: str, db: str = "warehouse", port: int = 5432) -> str:
    """One statement as the postgres user on the host's own server; its unaligned output."""
    result = host.run("runuser -u postgres -- psql -XAt -v ON_ERROR_STOP=1 -p %s -d %s -c %s",
                      str(port), db, query)
    assert result.rc == 0, result.stderr
    return str(result.stdout).strip()


def archive_current_wal(host: Any, timeout: int = 60) -> str:
    """Close the current WAL segment and wait until the archiver has stored it; its name."""
    segment = sql(host, "SELECT pg_walfile_name(pg_switch_wal())", db="postgres")
    for _ in range(timeout):
        if sql(host, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
               db="postgres") >= segment:
            return segment
        time.sleep(1)
    raise AssertionError(f"segment {segment} was not archived within {timeout} s")
