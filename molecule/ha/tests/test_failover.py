"""Failover under a write load through pgBouncer, and the old primary's return.

A load of four clients writes through the pgBouncer of a member that does
not lead (pgBouncer -> its HAProxy -> whichever member Patroni calls the
primary). Then the leader is lost:

- kill -9 of its postmaster, with primary_start_timeout 0 (Patroni hands
  the lead over instead of starting the server again in place);
- in synchronous mode, where no acknowledged commit may be lost, the whole
  host stopped (its container killed), and started again.

Each time a replica is promoted, the load's clients reconnect through the
same pgBouncer to the new leader, and the old primary comes back as a
replica of the new one (pg_rewind) with no step of ours. Measured, into
reports/ha-failover.txt: seconds from the fault to the first acknowledged
write on the new leader, the transactions that failed, and acknowledged
commits the new leader does not hold (lost).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testbed import ha_load, patroni
from testbed.pg_host import sql

MEMBERS = ["wops-mol-ha-1", "wops-mol-ha-2", "wops-mol-ha-3"]
PGBOUNCER_PORT = 6432


@pytest.fixture()
def members(hosts: dict[str, Any], secrets: dict[str, str]) -> Iterator[dict[str, Any]]:
    chosen = {name: hosts[name] for name in MEMBERS}
    leader, _ = patroni.wait_for_leader(chosen, timeout=120)
    patroni.wait_for_members(chosen, leader, replicas=2)
    before = patroni.cluster(chosen[leader], leader)
    assert before, "the leader's REST API did not answer"
    config = patroni.rest(chosen[leader], leader, "/config")[1]
    yield chosen
    # Every member back (a check may have stopped one), the dynamic
    # configuration as the inventory has it, one leader with two replicas.
    for name in MEMBERS:
        subprocess.run(["podman", "start", name], capture_output=True, check=False)
    leader, _ = patroni.wait_for_leader(chosen, timeout=180)
    patroni.patch_config(leader, {key: config.get(key) for key in
                                  ("primary_start_timeout", "synchronous_mode")}, secrets)
    patroni.wait_for_members(chosen, leader, replicas=2, timeout=240)


def _timeline(host: Any) -> int:
    """The timeline a primary writes WAL on (the first eight hex digits of its WAL file)."""
    return int(sql(host, "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))"
                         "::bit(32)::int", db="postgres"))


def _stored(host: Any, load: str) -> set[int]:
    out = sql(host, f"SELECT id FROM {ha_load.TABLE} WHERE load = '{load}'")
    return {int(line) for line in out.splitlines() if line}


def _failover_under_load(members: dict[str, Any], secrets: dict[str, str], name: str,
                         fault: Callable[[str], None], seconds: float,
                         recover: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the load, apply ``fault`` to the leader, measure; the figures."""
    leader, _ = patroni.wait_for_leader(members, timeout=60)
    timeline = _timeline(members[leader])
    sql(members[leader], ha_load.CREATE)
    client = sorted(n for n in members if n != leader)[0]
    load = ha_load.WriteLoad(client, name, secrets["vault_postgresql_etl_password"],
                             port=PGBOUNCER_PORT)
    load.start(clients=4, seconds=seconds)
    time.sleep(8)
    faulted = load.now()
    fault(leader)
    others = {n: h for n, h in members.items() if n != leader}
    new_leader, _ = patroni.wait_for_leader(others, timeout=120)
    # The clients' retries reach the new leader within HAProxy's rise checks
    # and pgBouncer's login retry: ten more seconds of load are plenty.
    time.sleep(10)
    load.stop()
    seen = load.result(timeout=seconds + 60)
    stored = _stored(members[new_leader], name)
    lost = seen.lost(stored)
    new_address = patroni.address(members[client], new_leader)
    first = seen.first_ack_after(faulted, server=new_address)
    assert seen.acked_between(seen.started, faulted) > 0, "the load wrote nothing before the fault"
    assert first is not None, (f"no write was acknowledged by {new_leader} after the fault "
                               f"({name}); errors: {seen.errors}")
    figures = {
        "leader": leader, "new_leader": new_leader, "client": client,
        "seconds": first - faulted,
        "failed": seen.failed_after(faulted), "acked": len(seen.acked), "lost": len(lost),
        "errors": seen.errors,
    }
    patroni.report(
        f"{name}: {leader} lost, {new_leader} leads; first acknowledged write "
        f"{figures['seconds']:.1f} s after the fault, {figures['failed']} failed transactions, "
        f"{figures['acked']} acknowledged, {figures['lost']} lost (4 clients through the "
        f"pgBouncer of {client})")
    if recover is not None:
        recover(leader)
    # The old primary returns as a replica of the new leader by itself.
    back = time.monotonic()
    patroni.wait_for_members(members, new_leader, replicas=2, timeout=240)
    assert patroni.in_recovery(members[leader]) is True
    assert _timeline(members[new_leader]) > timeline
    # It streams the new leader's timeline (its last checkpoint may predate it).
    assert int(sql(members[leader], "SELECT received_tli FROM pg_stat_wal_receiver",
                   db="postgres")) == _timeline(members[new_leader])
    # How it came back: rewound when it had WAL the new leader never got,
    # else restarted as a standby as it was (Patroni's journal says which).
    log = members[leader].run("journalctl -u 'patroni@*' --since '-10 min' --no-pager").stdout
    how = ("pg_rewind" if "pg_rewind" in log else
           "copied again" if "bootstrap from leader" in log or "basebackup" in log else
           "restarted as a standby")
    patroni.report(f"{name}: {leader} streaming from {new_leader} again "
                   f"{time.monotonic() - back:.0f} s later ({how})")
    return figures


def _kill_postmaster(members: dict[str, Any]) -> Callable[[str], None]:
    def fault(leader: str) -> None:
        members[leader].check_output("kill -9 %s", patroni.postmaster_pid(members[leader]))
    return fault


def test_a_killed_primary_is_replaced_and_clients_follow_through_pgbouncer(
        members: dict[str, Any], secrets: dict[str, str]) -> None:
    leader, _ = patroni.wait_for_leader(members, timeout=30)
    patroni.patch_config(leader, {"primary_start_timeout": 0}, secrets)
    figures = _failover_under_load(members, secrets, "kill9-async", _kill_postmaster(members),
                                   seconds=90)
    assert figures["seconds"] < 60


def test_a_stopped_host_is_replaced_and_in_synchronous_mode_no_commit_is_lost(
        members: dict[str, Any], secrets: dict[str, str]) -> None:
    leader, _ = patroni.wait_for_leader(members, timeout=30)
    patroni.patch_config(leader, {"synchronous_mode": True}, secrets)

    def synchronous() -> bool:
        return any(r["sync_state"] == "sync" for r in patroni.streaming_replicas(members[leader]))

    patroni.wait_until(synchronous, timeout=60, what=f"{leader} with a synchronous standby")

    def stop(leader: str) -> None:
        # The container is killed (stop-timeout 0): the host is gone at once.
        subprocess.run(["podman", "stop", leader], capture_output=True, check=True)

    def start(leader: str) -> None:
        subprocess.run(["podman", "start", leader], capture_output=True, check=True)

    figures = _failover_under_load(members, secrets, "host-stopped-sync", stop, seconds=120,
                                   recover=start)
    assert figures["seconds"] < 90
    assert figures["lost"] == 0, figures
