"""PostgreSQL under Patroni, as the converge left it (before any check moves the lead).

The postgresql role built the primary on wops-mol-ha-1 and Patroni adopted it
while it ran: it leads on timeline 1 (no promotion), the cluster's own unit
is disabled, and the two replicas are Patroni's copies of it (the same system
identifier), streaming through slots named after them. etcd holds the
inventory's dynamic configuration, and a setting changed in the inventory
reaches every member through it. This file runs first (test_etcd.py then
takes the quorum away, test_patroni.py fails the leader over).
"""

from __future__ import annotations

from typing import Any

import pytest

from testbed import patroni, scenario
from testbed.pg_host import sql

MEMBERS = ["wops-mol-ha-1", "wops-mol-ha-2", "wops-mol-ha-3"]
FIRST = "wops-mol-ha-1"


@pytest.fixture()
def members(hosts: dict[str, Any]) -> dict[str, Any]:
    return {name: hosts[name] for name in MEMBERS}


def test_patroni_runs_every_member_and_the_clusters_own_unit_does_not(
        members: dict[str, Any], stack: dict[str, str]) -> None:
    for name, host in members.items():
        assert host.service(stack["wops_patroni_service"]).is_running, name
        assert host.service(stack["wops_patroni_service"]).is_enabled, name
        assert not host.service(stack["wops_postgresql_service"]).is_running, name
        assert not host.service(stack["wops_postgresql_service"]).is_enabled, name
        start = host.file(f"{stack['wops_postgresql_conf_dir']}/start.conf").content_string
        assert start.strip() == "manual", (name, start)
        # The postmaster is Patroni's child, in Patroni's unit.
        pid = patroni.postmaster_pid(host)
        unit = host.check_output("ps -o unit= -p %s", pid)
        assert unit.strip() == f"{stack['wops_patroni_service']}.service", (name, unit)


def test_the_adopted_primary_leads_on_its_own_timeline_and_the_replicas_are_its_copies(
        members: dict[str, Any]) -> None:
    leader, _ = patroni.wait_for_leader(members, timeout=60)
    assert leader == FIRST
    view = patroni.wait_for_members(members, FIRST, replicas=2)
    assert sorted(m["name"] for m in view["members"]) == MEMBERS
    # Adopted while it ran: no promotion, so no new timeline.
    timeline = sql(members[FIRST], "SELECT timeline_id FROM pg_control_checkpoint()", db="postgres")
    assert timeline == "1", timeline
    sysids = {name: sql(host, "SELECT system_identifier FROM pg_control_system()", db="postgres")
              for name, host in members.items()}
    assert len(set(sysids.values())) == 1, sysids
    # Each replica streams through a slot of its own name, which Patroni keeps.
    slots = sql(members[FIRST], "SELECT string_agg(slot_name || ':' || active, ',' ORDER BY 1) "
                "FROM pg_replication_slots", db="postgres")
    assert slots == "wops_mol_ha_2:true,wops_mol_ha_3:true", slots


def test_a_row_written_on_the_leader_is_read_on_the_replicas(members: dict[str, Any]) -> None:
    sql(members[FIRST], "CREATE TABLE IF NOT EXISTS ha_probe (id int PRIMARY KEY, note text)")
    sql(members[FIRST], "INSERT INTO ha_probe VALUES (1, 'adopted') ON CONFLICT (id) DO UPDATE "
        "SET note = EXCLUDED.note")
    lsn = sql(members[FIRST], "SELECT pg_current_wal_lsn()")
    for name in MEMBERS[1:]:
        host = members[name]

        def replayed(h: Any = host) -> bool:
            return sql(h, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'") == "t"

        patroni.wait_until(replayed, timeout=30, what=f"{name} replaying {lsn}")
        assert sql(host, "SELECT note FROM ha_probe WHERE id = 1") == "adopted", name
        refused = host.run("runuser -u postgres -- psql -XAtq -d warehouse -c %s",
                           "INSERT INTO ha_probe VALUES (2, 'on a replica')")
        assert refused.rc != 0 and "read-only" in refused.stderr, (name, refused.stderr)


def test_etcd_holds_the_inventorys_dynamic_configuration(members: dict[str, Any]) -> None:
    status, config = patroni.rest(members[FIRST], FIRST, "/config")
    assert status == 200, config
    assert (config["ttl"], config["loop_wait"], config["retry_timeout"]) == (30, 10, 10), config
    assert config["postgresql"]["use_pg_rewind"] is True, config
    params = config["postgresql"]["parameters"]
    # The command-line settings come from etcd, the same on every member.
    for name, host in members.items():
        for setting in ("max_connections", "max_worker_processes", "max_wal_senders", "wal_level"):
            shown = sql(host, f"SHOW {setting}", db="postgres")
            assert shown == str(params[setting]), (name, setting, shown)


def test_a_changed_setting_reaches_every_member_through_etcd(members: dict[str, Any]) -> None:
    """max_connections (Patroni's command line) and work_mem (the drop-in), one run."""
    started = {name: sql(host, "SELECT pg_postmaster_start_time()", db="postgres")
               for name, host in members.items()}
    run = scenario.playbook("converge.yml", "--tags", "postgresql",
                            "-e", "postgresql_max_connections=120",
                            "-e", '{"postgresql_settings": {"work_mem": "24MB"}}',
                            "-e", "postgresql_restart_allowed=true")
    assert run.returncode == 0, scenario.failed_sections(run.stdout)
    _, config = patroni.rest(members[FIRST], FIRST, "/config")
    assert str(config["postgresql"]["parameters"]["max_connections"]) == "120", config
    for name, host in members.items():
        assert sql(host, "SHOW max_connections", db="postgres") == "120", name
        assert sql(host, "SHOW work_mem", db="postgres") == "24MB", name
        # A restart each (Patroni's, in place), one member at a time.
        assert sql(host, "SELECT pg_postmaster_start_time()", db="postgres") != started[name], name
    leader, _ = patroni.wait_for_leader(members, timeout=60)
    assert leader == FIRST, "a restart under Patroni moved the lead"
    patroni.wait_for_members(members, FIRST, replicas=2)


def test_a_setting_the_server_refuses_changes_nothing(members: dict[str, Any]) -> None:
    _, before = patroni.rest(members[FIRST], FIRST, "/config")
    bad = '{"postgresql_settings": {"work_mem": "24MB", "max_wal_senders": "many"}}'
    run = scenario.playbook("converge.yml", "--tags", "postgresql",
                            "-e", "postgresql_max_connections=120", "-e", bad)
    assert run.returncode != 0
    said = " ".join(run.stdout.split())
    assert "PostgreSQL rejects the new settings (max_wal_senders)" in said, \
        scenario.failed_sections(run.stdout)
    _, after = patroni.rest(members[FIRST], FIRST, "/config")
    assert after == before
    for name, host in members.items():
        assert sql(host, "SHOW max_wal_senders", db="postgres") == "10", name
