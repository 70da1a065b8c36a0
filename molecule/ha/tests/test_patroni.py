"""Automatic failover under Patroni, and the old primary's way back.

- kill -9 of the leader's postmaster with the default primary_start_timeout
  (300 s): Patroni starts the server again in place, the lead stays.
- kill -9 with primary_start_timeout 0 (as an operator who prefers a
  failover sets it): a replica is promoted, and the old leader rejoins as a
  replica by itself (pg_rewind when it had diverged).
- the whole leader host lost (its container killed, etcd member included):
  a replica is promoted once the leader lock expires (ttl), and the host,
  started again, rejoins as a replica.
Each case writes a marker row that both replicas have replayed before the
fault, and checks it on the new leader (nothing acknowledged by every
member is lost). The seconds from the fault to the first write the new
leader takes go to reports/ha-failover.txt, with the failed and lost
transactions of the failovers under write load.
"""

from __future__ import annotations

import subprocess
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
    # Whatever a check took away runs again afterwards.
    for name in MEMBERS:
        subprocess.run(["podman", "start", name], capture_output=True, check=False)
    patroni.patch_config(chosen[patroni.wait_for_leader(chosen, timeout=120)[0]],
                         {"primary_start_timeout": 300})


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


def _first_write(members: dict[str, Any], exclude: str, timeout: float) -> tuple[str, float]:
    """The member (not ``exclude``) that took the first write after a fault, and when."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, host in members.items():
            if name == exclude:
                continue
            done = host.run("runuser -u postgres -- psql -XAtq -d warehouse -c %s",
                            "INSERT INTO ha_marker (note) VALUES ('first write after the fault')")
            if done.rc == 0:
                return name, time.monotonic()
        time.sleep(0.5)
    raise AssertionError(f"no member but {exclude} took a write within {timeout} s")


def _timeline(host: Any) -> int:
    """A primary's timeline, from the WAL it writes (the checkpoint's lags after a promotion)."""
    return int(sql(host, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)",
                   db="postgres"), 16)


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


def test_a_crashed_primary_fails_over_and_rejoins_as_a_replica(members: dict[str, Any]) -> None:
    old, _ = patroni.wait_for_leader(members, timeout=30)
    patroni.patch_config(members[old], {"primary_start_timeout": 0})
    time.sleep(12)  # every member's next loop (loop_wait 10) reads the change
    timeline = _timeline(members[old])
    row = _marker(members, old, "before the failover")
    killed = time.monotonic()
    members[old].check_output("kill -9 %s", patroni.postmaster_pid(members[old]))
    new, wrote = _first_write(members, exclude=old, timeout=90)
    patroni.report(f"kill -9, failover: {new} took the first write "
                   f"{wrote - killed:.1f} s after the kill")
    assert wrote - killed < 60
    assert sql(members[new], f"SELECT count(*) FROM ha_marker WHERE id = {row}") == "1"
    assert _timeline(members[new]) > timeline
    # Never two primaries: the old one stays down or follows.
    assert patroni.primaries(members) == [new]
    # The old leader comes back as a replica of the new one, by itself.
    patroni.wait_for_members(members, new, replicas=2, timeout=180)
    assert patroni.in_recovery(members[old]) is True
    assert sql(members[old], f"SELECT count(*) FROM ha_marker WHERE id = {row}") == "1"


def test_a_lost_leader_host_fails_over_and_the_host_rejoins(members: dict[str, Any]) -> None:
    old, _ = patroni.wait_for_leader(members, timeout=30)
    row = _marker(members, old, "before the host was lost")
    others = {name: host for name, host in members.items() if name != old}
    lost = time.monotonic()
    subprocess.run(["podman", "kill", old], capture_output=True, check=True)
    new, wrote = _first_write(others, exclude=old, timeout=120)
    patroni.report(f"host lost: {new} took the first write {wrote - lost:.1f} s "
                   f"after {old} went down")
    # The lock expires after ttl (30 s); a member's next loop then promotes.
    assert wrote - lost < 75
    assert sql(members[new], f"SELECT count(*) FROM ha_marker WHERE id = {row}") == "1"
    assert patroni.primaries(others) == [new]
    subprocess.run(["podman", "start", old], capture_output=True, check=True)
    patroni.wait_for_members(members, new, replicas=2, timeout=240)
    assert patroni.in_recovery(members[old]) is True


@pytest.mark.parametrize("synchronous", [False, True], ids=["asynchronous", "synchronous"])
def test_a_failover_under_write_load(members: dict[str, Any], secrets: dict[str, str],
                                     synchronous: bool) -> None:
    """kill -9 of the leader's postmaster while four clients commit rows as fast as they can.

    Prints the seconds from the kill to the moment every client commits again,
    the failed transactions and the acknowledged commits the new leader does
    not hold. Synchronous mode must lose none.
    """
    old, _ = patroni.wait_for_leader(members, timeout=30)
    patroni.patch_config(members[old], {"primary_start_timeout": 0,
                                        "synchronous_mode": str(synchronous).lower()})
    # The next loop of every member reads it; in synchronous mode the leader
    # names a synchronous standby.
    time.sleep(12)
    if synchronous:
        def has_sync() -> bool:
            return any(r["sync_state"] == "sync" for r in patroni.streaming_replicas(members[old]))
        patroni.wait_until(has_sync, timeout=60, what="a synchronous standby")
    client = next(name for name in MEMBERS if name != old)
    dsn = (f"host={','.join(MEMBERS)} port=5432 dbname=warehouse user=etl sslmode=verify-full "
           f"sslrootcert={patroni.CA} connect_timeout=2 target_session_attrs=read-write")
    prefix = "sync" if synchronous else "async"
    try:
        with patroni.WriteLoad(client, dsn, 45, prefix,
                               secrets["vault_postgresql_etl_password"]) as load:
            time.sleep(10)
            killed = time.time()
            members[old].check_output("kill -9 %s", patroni.postmaster_pid(members[old]))
        new, _ = patroni.wait_for_leader(members, timeout=60, exclude=old)
        acked = load.acked()
        lost = acked - patroni.stored(members[new], prefix)
        back = load.first_ok_after_failure() - killed
        patroni.report(f"failover under load ({prefix}): every client committing again "
                       f"{back:.1f} s after the kill; {load.failed()} failed transactions; "
                       f"{len(acked)} commits acknowledged, {len(lost)} of them lost")
        assert len(acked) > 100, load.result
        assert back < 60
        if synchronous:
            assert lost == set(), sorted(lost)[:20]
    finally:
        patroni.patch_config(members[patroni.wait_for_leader(members, timeout=120)[0]],
                             {"synchronous_mode": "false"})
    patroni.wait_for_members(members, new, replicas=2, timeout=180)
