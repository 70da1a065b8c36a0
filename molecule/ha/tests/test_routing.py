"""Clients follow the leader: pgBouncer behind HAProxy on every member.

Through the pgBouncer of every member, the warehouse database is served by
the member Patroni calls the leader and warehouse_ro by a streaming replica;
each HAProxy admits exactly the leader to its primary route and the two
replicas to its read route, by what their Patroni REST APIs answer.
"""

from __future__ import annotations

from typing import Any

import pytest

from testbed import ha_load, patroni

MEMBERS = ["wops-mol-ha-1", "wops-mol-ha-2", "wops-mol-ha-3"]
PGBOUNCER_PORT = 6432


@pytest.fixture()
def members(hosts: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    chosen = {name: hosts[name] for name in MEMBERS}
    leader, _ = patroni.wait_for_leader(chosen, timeout=120)
    patroni.wait_for_members(chosen, leader, replicas=2)
    for name in MEMBERS:
        ha_load.write_pgpass(name, PGBOUNCER_PORT, secrets["vault_postgresql_etl_password"])
    return chosen


def _through_pgbouncer(host: Any, db: str) -> tuple[str, str]:
    """(server address, in recovery) of the server answering ``db`` through the local pgBouncer."""
    out = host.check_output(
        "psql -XAt -F '|' %s -c %s",
        f"host=127.0.0.1 port={PGBOUNCER_PORT} dbname={db} user=etl sslmode=verify-full "
        "sslrootcert=/etc/pgbouncer/tls/ca.crt connect_timeout=5",
        "SELECT inet_server_addr(), pg_is_in_recovery()")
    address, recovery = out.strip().split("|")
    return address, recovery


def _route_states(host: Any) -> dict[str, dict[str, str]]:
    """HAProxy's state of each member per route (show stat on its runtime socket)."""
    out = host.check_output("echo 'show stat' | socat stdio /run/haproxy/admin.sock")
    routes: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        fields = line.split(",")
        if len(fields) > 17 and fields[1] not in ("FRONTEND", "BACKEND", "svname"):
            routes.setdefault(fields[0], {})[fields[1]] = fields[17]
    return routes


def test_every_pgbouncer_reaches_the_leader_and_the_replicas(members: dict[str, Any]) -> None:
    leader, _ = patroni.wait_for_leader(members, timeout=30)
    leader_address = patroni.address(members[leader], leader)
    replica_addresses = {patroni.address(members[leader], n) for n in members if n != leader}
    for name, host in members.items():
        assert _through_pgbouncer(host, "warehouse") == (leader_address, "f"), name
        address, recovery = _through_pgbouncer(host, "warehouse_ro")
        assert recovery == "t", name
        assert address in replica_addresses, name


def test_haproxy_admits_the_leader_to_one_route_and_the_replicas_to_the_other(
        members: dict[str, Any], stack: dict[str, str]) -> None:
    leader, _ = patroni.wait_for_leader(members, timeout=30)
    replicas = sorted(n for n in members if n != leader)
    for name, host in members.items():
        routes = _route_states(host)
        primary = routes["postgres_primary"]
        assert [m for m, state in primary.items() if state == "UP"] == [leader], (name, routes)
        up = sorted(m for m, state in routes["postgres_replicas"].items() if state == "UP")
        assert up == replicas, (name, routes)
        # The routes listen on the loopback only.
        listening = host.check_output("ss -Htln")
        for port in (stack["wops_haproxy_primary_port"], stack["wops_haproxy_replica_port"]):
            assert f"127.0.0.1:{port} " in listening, listening
            assert f"*:{port} " not in listening and f"0.0.0.0:{port} " not in listening
