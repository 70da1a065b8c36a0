"""A primary and its streaming replica: replication, reads on the replica, rebuild.

Runs once for the pair (the ``hosts`` fixture), not once per host.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from testbed import scenario

Host = Any

PRIMARY = "wops-mol-pg-primary"
REPLICA = "wops-mol-pg-replica"
SLOT = "wops_mol_pg_replica"
PROBE = "SELECT marker FROM replication_probe WHERE marker = :'marker'"


def _psql(host: Host, query: str, db: str, marker: str) -> Any:
    """Run a query as postgres; :'marker' in it is the marker, quoted by psql."""
    return host.run("printf %s %s | runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 "
                    "-v marker=%s -v slot=%s -d %s", "%s", query, marker, SLOT, db)


def sql(host: Host, query: str, *, db: str = "warehouse", marker: str = "") -> str:
    result = _psql(host, query, db, marker)
    assert result.rc == 0, result.stderr
    out: str = result.stdout.strip()
    return out


def wait_for(host: Host, query: str, expected: str, *, db: str = "warehouse",
             marker: str = "", timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        got: str = _psql(host, query, db, marker).stdout.strip()
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(1)


def play(*args: str,
         extra_vars: dict[str, object] | None = None) -> subprocess.CompletedProcess[str]:
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
           str(scenario / "converge.yml"), "--tags", "postgresql", *args]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    # One stream: failures go to stderr with the scenario's display settings.
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False, timeout=1800,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})


def test_primary_streams_to_the_replica_over_tls(hosts: dict[str, Host]) -> None:
    primary = hosts[PRIMARY]
    row = wait_for(primary, "SELECT r.application_name, r.state, s.ssl FROM pg_stat_replication r "
                            "JOIN pg_stat_ssl s USING (pid)", f"{SLOT}|streaming|t",
                   db="postgres")
    assert row == f"{SLOT}|streaming|t"
    assert sql(primary, "SELECT slot_type, active FROM pg_replication_slots "
                        "WHERE slot_name = :'slot'", db="postgres") == "physical|t"


def test_replica_is_a_hot_standby_with_checksums(hosts: dict[str, Host],
                                                 stack: dict[str, str]) -> None:
    replica = hosts[REPLICA]
    assert sql(replica, "SELECT pg_is_in_recovery()", db="postgres") == "t"
    assert sql(replica, "SHOW data_checksums", db="postgres") == "on"
    assert sql(replica, "SELECT status, slot_name FROM pg_stat_wal_receiver",
               db="postgres") == f"streaming|{SLOT}"
    # The standby settings live in the role's drop-in, not in postgresql.auto.conf.
    assert "primary_conninfo" not in replica.file(
        f"{stack['wops_postgresql_data_dir']}/postgresql.auto.conf").content_string
    assert replica.file("/var/lib/postgresql/.pgpass").mode == 0o600


def test_rows_written_on_the_primary_appear_on_the_replica(hosts: dict[str, Host]) -> None:
    primary, replica = hosts[PRIMARY], hosts[REPLICA]
    marker = str(time.time_ns())
    sql(primary, "CREATE TABLE IF NOT EXISTS replication_probe (marker text PRIMARY KEY); "
                 "ALTER TABLE replication_probe OWNER TO etl; "
                 "INSERT INTO replication_probe VALUES (:'marker')", marker=marker)
    got = wait_for(replica, PROBE, marker, marker=marker)
    assert got == marker


def test_reporting_reads_on_the_replica(hosts: dict[str, Host], secrets: dict[str, str],
                                        stack: dict[str, str]) -> None:
    replica = hosts[REPLICA]
    sql(hosts[PRIMARY], "CREATE TABLE IF NOT EXISTS replication_probe (marker text PRIMARY KEY); "
                        "ALTER TABLE replication_probe OWNER TO etl; "
                        "GRANT SELECT ON replication_probe TO reporting")
    marker = f"reporting-{time.time_ns()}"
    sql(hosts[PRIMARY], f"INSERT INTO replication_probe VALUES ('{marker}')")
    assert wait_for(replica, f"SELECT count(*) FROM replication_probe WHERE marker = '{marker}'",
                    "1") == "1"
    conninfo = (f"host={REPLICA} port=5432 dbname=warehouse user=reporting "
                f"sslmode=verify-full sslrootcert={stack['wops_postgresql_conf_dir']}/tls/ca.crt")
    read = replica.run("env PGPASSWORD=%s psql -XAtq %s -c %s",
                       secrets["vault_postgresql_reporting_password"], conninfo,
                       "SELECT current_user, marker FROM replication_probe "
                       f"WHERE marker = '{marker}'")
    # reporting read the row the primary wrote, on the replica.
    assert read.rc == 0 and read.stdout.strip() == f"reporting|{marker}", read.stderr
    write = replica.run("env PGPASSWORD=%s psql -XAtq %s -c %s",
                        secrets["vault_postgresql_etl_password"],
                        conninfo.replace("user=reporting", "user=etl"),
                        "INSERT INTO replication_probe VALUES ('x')")
    assert write.rc != 0 and "read-only transaction" in write.stderr


def test_missing_primary_fails_in_preflight(hosts: dict[str, Host]) -> None:
    before = sql(hosts[REPLICA], "SELECT pg_postmaster_start_time()", db="postgres")
    proc = play(extra_vars={"postgresql_primary_host": "wops-mol-nowhere"})
    assert proc.returncode != 0
    assert "postgresql_primary_host 'wops-mol-nowhere'" in proc.stdout, proc.stdout[-3000:]
    assert "Write the settings drop-in" not in proc.stdout
    assert sql(hosts[REPLICA], "SELECT pg_postmaster_start_time()", db="postgres") == before


def test_replica_is_rebuilt_after_its_data_directory_is_lost(hosts: dict[str, Host],
                                                            stack: dict[str, str]) -> None:
    primary, replica = hosts[PRIMARY], hosts[REPLICA]
    marker = f"before-loss-{time.time_ns()}"
    sql(primary, "CREATE TABLE IF NOT EXISTS replication_probe (marker text PRIMARY KEY); "
                 "INSERT INTO replication_probe VALUES (:'marker')", marker=marker)
    replica.check_output("systemctl stop %s", stack["wops_postgresql_service"])
    replica.check_output("rm -rf %s", stack["wops_postgresql_data_dir"])

    proc = play()
    assert proc.returncode == 0, proc.stdout[-4000:]
    # The task ran on the replica (its banner alone is printed when it is skipped too).
    copied = scenario.task_output(proc.stdout, "Copy the primary with pg_basebackup")
    assert f"changed: [{REPLICA}]" in copied, copied or proc.stdout[-4000:]
    assert sql(replica, "SELECT pg_is_in_recovery()", db="postgres") == "t"
    assert sql(replica, PROBE, marker=marker) == marker
    after = f"after-rebuild-{time.time_ns()}"
    sql(primary, "INSERT INTO replication_probe VALUES (:'marker')", marker=after)
    assert wait_for(replica, PROBE, after, marker=after) == after
    assert wait_for(primary, "SELECT state FROM pg_stat_replication", "streaming",
                    db="postgres") == "streaming"
