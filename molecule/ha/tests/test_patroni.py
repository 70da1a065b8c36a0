"""A crashed primary under Patroni.

kill -9 of the leader's postmaster with the default primary_start_timeout
(300 s): Patroni starts the server again in place and the lead stays. A
marker row that both replicas replayed before the crash is still there; the
seconds from the kill to the first write go to reports/ha-failover.txt.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from testbed import patroni
from testbed.pg_host import sql

MEMBERS = ["wops-mol-ha-1", "wops-mol-ha-2", "wops-mol-ha-3"]


@pytest.fixture()
def members(hosts: dict[str, Any]) -> Iterator[dict[str, Any]]:
    chosen = {name: hosts[name] for name in MEMBERS}
    leader, _ = patroni.wait_for_leader(chosen, timeout=120)
    patroni.wait_for_members(chosen, leader, replicas=2)
    yield chosen
    # The crash is over: the cluster leads again before the next check.
    patroni.wait_for_leader(chosen, timeout=120)


def _marker(members: dict[str, Any], leader: str, note: str) -> int:
    """A row written on the leader and replayed on both replicas; its id."""
    host = members[leader]
    sql(host, "CREATE TABLE IF NOT EXISTS ha_marker (id serial PRIMARY KEY, note text, "
        "at timestamptz DEFAULT now())")
    row = int(sql(host, f"WITH r AS (INSERT INTO ha_marker (note) VALUES ('{note}') RETURNING id) "
                        "SELECT id FROM r"))
    lsn = sql(host, "SELECT pg_current_wal_lsn()")
    for name, replica in members.items():
        if name != leader:
            def replayed(h: Any = replica) -> bool:
                return sql(h, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'") == "t"
            patroni.wait_until(replayed, timeout=30, what=f"{name} replaying {lsn}")
    return row


def test_a_crashed_primary_is_started_again_in_place_by_default(
        members: dict[str, Any]) -> None:
    leader, _ = patroni.wait_for_leader(members, timeout=30)
    row = _marker(members, leader, "before the in-place crash")
    pid = patroni.postmaster_pid(members[leader])
    killed = time.monotonic()
    members[leader].check_output("kill -9 %s", pid)

    def writable() -> bool:
        done = members[leader].run("runuser -u postgres -- psql -XAtq -d warehouse -c %s",
                                   "INSERT INTO ha_marker (note) VALUES ('after')")
        return bool(done.rc == 0)

    took = patroni.wait_until(writable, timeout=90, what=f"{leader} taking writes again")
    patroni.report(f"kill -9, in place: {leader} took writes again {took:.1f} s after the kill")
    assert patroni.postmaster_pid(members[leader]) != pid
    assert patroni.wait_for_leader(members, timeout=10)[0] == leader
    assert sql(members[leader], f"SELECT count(*) FROM ha_marker WHERE id = {row}") == "1"
    assert time.monotonic() - killed < 90
