"""postgresql role: bad input fails in preflight, naming the variable, before any change.

The role runs in check mode, preflight tags only, against local hosts: a
primary and a replica in the stack's groups. If a check ever let bad input
through, check mode and the tag filter would still keep the controller
unchanged.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]
_json = controller.extra_vars

SECRETS = [
    "vault_postgresql_replication_password", "vault_postgresql_etl_password",
    "vault_postgresql_reporting_password", "vault_postgresql_airflow_password",
    "vault_postgresql_monitoring_password", "vault_postgresql_admin_password",
    "vault_postgresql_backup_password",
]


def _run(tmp_path: Path, *extra: str, limit: str = "all",
         groups: dict[str, list[str]] | None = None) -> subprocess.CompletedProcess[str]:
    secrets = "".join(f"    {name}: not-a-real-secret\n" for name in SECRETS)
    groups = groups or {"postgres_primary": ["db1"], "postgres_replica": ["db2"]}
    children = "".join(
        f"        {group}:\n          hosts:\n" + "".join(f"            {h}:\n" for h in hosts)
        for group, hosts in groups.items())
    return controller.run(
        tmp_path,
        controller.local_hosts(become_su=True, variables=secrets)
        + "  children:\n    postgres:\n      children:\n" + children,
        "- name: PostgreSQL\n  hosts: postgres\n  any_errors_fatal: true\n"
        "  roles:\n    - role: postgresql\n",
        "--check", "--tags", "postgresql_preflight", "--limit", limit, *extra)


@pytest.mark.parametrize(("extra", "named"), [
    (["-e", "postgresql_port=fivefour"], "postgresql_port"),
    (["-e", "wops_postgresql_version=17"], "wops_postgresql_version is '17'"),
    (_json(postgresql_settings={"Work-Mem": "64MB"}), "postgresql_settings has the key 'Work-Mem'"),
    (_json(postgresql_settings={"wrok_mem": "64MB"}), "postgresql_settings names wrok_mem"),
    (_json(postgresql_hba_entries=[{"type": "host", "database": "all", "user": "all",
                                    "address": "0.0.0.0/0", "method": "trust"}]),
     "postgresql_hba_entries[0]"),
    (_json(postgresql_hba_entries=[{"type": "hostssl", "database": "all", "user": "all",
                                    "address": "10.0.0.0/8", "method": "md5"}]),
     "postgresql_hba_entries[0]"),
    (_json(postgresql_hba_entries=[{"type": "local", "database": "all", "user": "all",
                                    "method": "trust"}]),
     "postgresql_hba_entries[0]"),
    (_json(postgresql_hba_entries=[{"type": "hostssl", "database": "all", "user": "all",
                                    "address": ["samenet", "10.1.2.3/40"],
                                    "method": "scram-sha-256"}]),
     "has the address '10.1.2.3/40'"),
    (_json(postgresql_hba_entries=[{"type": "hostssl", "database": "all", "user": "all",
                                    "method": "scram-sha-256"}]),
     "postgresql_hba_entries[0]"),
    (_json(postgresql_hba_entries=[{"type": "hostssl", "database": "all", "user": "all",
                                    "address": "0.0.0.0/0", "method": "scram-sha-256"}]),
     "postgresql_hba_entries[0] (hostssl all all scram-sha-256) accepts connections from "
     "'0.0.0.0/0'"),
    (_json(postgresql_hba_entries=[{"type": "local", "database": "all", "user": "all",
                                    "method": "scram-sha-256"},
                                   {"type": "hostssl", "database": "all", "user": "all",
                                    "address": ["10.0.0.0/8", "::/0"], "method": "scram-sha-256"}]),
     "postgresql_hba_entries[1] (hostssl all all scram-sha-256) accepts connections from '::/0'"),
    (_json(postgresql_client_networks=["all"]), "accepts connections from 'all'"),
    (_json(postgresql_listen_addresses=["10.0.0.0/24"]),
     "postgresql_listen_addresses has '10.0.0.0/24'"),
    (_json(postgresql_users=[{"name": "etl", "password_var": "vault_postgresql_nope_password"}]),
     "'vault_postgresql_nope_password', which is not defined"),
    (["-e", "postgresql_replication_password_var=vault_missing"],
     "postgresql_replication_password_var takes its password from the variable 'vault_missing'"),
    (["-e", "postgresql_primary_host=nowhere"], "postgresql_primary_host 'nowhere'"),
    (["-e", "postgresql_archive_mode=on", "-e", "postgresql_archive_command="],
     "postgresql_archive_command"),
    (_json(postgresql_default_privileges=[{"database": "warehouse", "owner": "etl",
                                           "objects": "TABLES", "privs": ["USAGE"],
                                           "role": "reporting"}]),
     "postgresql_default_privileges entry"),
    (_json(postgresql_warehouse_migrations_enabled=True,
           postgresql_warehouse_migrations_command=["/nonexistent/etl", "migrate", "--json"]),
     "postgresql_warehouse_migrations_command"),
    (_json(postgresql_tls_cert_src="/nonexistent/server.crt"), "postgresql_tls_key_src"),
])
def test_bad_input_fails_in_preflight(tmp_path: Path, extra: list[str], named: str) -> None:
    proc = _run(tmp_path, *extra)
    assert proc.returncode != 0
    assert named in proc.stdout, proc.stdout[-3000:]
    assert "Install the PostgreSQL server" not in proc.stdout


def test_good_input_passes_preflight(tmp_path: Path) -> None:
    # Real setting names pass the check against the server binary.
    proc = _run(tmp_path, *_json(postgresql_settings={"work_mem": "64MB",
                                                      "pg_stat_statements.max": 5000}))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "changed=0" in proc.stdout


def test_an_address_open_to_all_passes_with_its_named_override(tmp_path: Path) -> None:
    proc = _run(tmp_path, *_json(postgresql_client_networks=["0.0.0.0/0"],
                                 postgresql_hba_allow_any_address=True))
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.parametrize(("groups", "named"), [
    ({"postgres_primary": ["db1", "db3"], "postgres_replica": ["db2"]},
     "postgres_primary has 2 hosts (db1, db3)"),
    ({"postgres_primary": ["db1"], "postgres_replica": ["db1", "db2"]},
     "db1 is in both postgres_primary and postgres_replica"),
])
def test_inventory_topology_mistakes_fail_in_preflight(
        tmp_path: Path, groups: dict[str, list[str]], named: str) -> None:
    proc = _run(tmp_path, groups=groups)
    assert proc.returncode != 0
    assert named in proc.stdout, proc.stdout[-3000:]
    assert "Install the PostgreSQL server" not in proc.stdout


def test_every_problem_is_named_in_one_run(tmp_path: Path) -> None:
    """Three mistakes in three variables: one run names all three, not the first alone."""
    proc = _run(tmp_path, "-e", "postgresql_port=70000", *_json(
        postgresql_settings={"Work-Mem": "64MB"},
        postgresql_hba_entries=[{"type": "host", "database": "all", "user": "all",
                                 "address": "10.0.0.0/8", "method": "trust"}]))
    controller.assert_refused(
        proc, "postgresql_port (70000) must be a TCP port",
              "postgresql_settings has the key 'Work-Mem'",
              "postgresql_hba_entries[0] (host all all trust) is not allowed",
        not_reached=("Install the PostgreSQL server",))
