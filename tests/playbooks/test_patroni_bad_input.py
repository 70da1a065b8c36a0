"""The HA mode's inventory mistakes fail in the postgresql role's preflight, naming the variable.

As test_postgresql_bad_input.py: check mode, preflight tags only, local hosts
in the stack's groups (database hosts, an etcd group), nothing changed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import controller

SECRETS = [
    "vault_postgresql_replication_password", "vault_postgresql_etl_password",
    "vault_postgresql_reporting_password", "vault_postgresql_airflow_password",
    "vault_postgresql_monitoring_password", "vault_postgresql_admin_password",
    "vault_postgresql_backup_password", "vault_postgresql_rewind_password",
    "vault_patroni_rest_password",
]
_json = controller.extra_vars


def _run(tmp_path: Path, *extra: str, database: int = 3,
         etcd: int = 3) -> subprocess.CompletedProcess[str]:
    secrets = "".join(f"    {name}: not-a-real-secret\n" for name in SECRETS)
    hosts = [f"db{i}" for i in range(1, database + 1)]
    members = "".join(f"            {h}:\n" for h in hosts[1:])
    inventory = (
        controller.local_hosts(become_su=True, variables=secrets
                               + "    wops_postgresql_ha_mode: patroni\n")
        + "  children:\n    postgres:\n      children:\n"
        + "        postgres_primary:\n          hosts:\n            db1:\n"
        + (f"        postgres_replica:\n          hosts:\n{members}" if members else "")
        + "    etcd:\n      hosts:\n"
        + "".join(f"        etcd{i}:\n" for i in range(1, etcd + 1)))
    return controller.run(
        tmp_path, inventory,
        "- name: PostgreSQL\n  hosts: postgres\n  any_errors_fatal: true\n"
        "  roles:\n    - role: postgresql\n",
        "--check", "--tags", "postgresql_preflight", *extra)


def test_a_three_member_cluster_on_three_etcd_members_passes(tmp_path: Path) -> None:
    run = _run(tmp_path)
    assert run.returncode == 0, run.stdout[-3000:]


@pytest.mark.parametrize(("etcd", "named"), [(2, "the etcd group has 2 host(s)"),
                                             (4, "the etcd group has 4 host(s)")])
def test_an_even_or_too_small_etcd_group_is_refused(tmp_path: Path, etcd: int,
                                                     named: str) -> None:
    controller.assert_refused(_run(tmp_path, etcd=etcd), "wops_postgresql_ha_mode is patroni",
                              named, "an odd number of members, three or more")


def test_the_ha_mode_with_one_database_host_is_refused(tmp_path: Path) -> None:
    controller.assert_refused(_run(tmp_path, database=1), "wops_postgresql_ha_mode is patroni",
                              "the postgres group has 1 host(s) (db1)",
                              "wops_postgresql_ha_mode: streaming")


def test_synchronous_mode_without_a_replica_to_be_synchronous_is_refused(tmp_path: Path) -> None:
    controller.assert_refused(
        _run(tmp_path, *_json(postgresql_patroni_synchronous_mode=True,
                              postgresql_patroni_synchronous_node_count=3)),
        "postgresql_patroni_synchronous_mode is true with "
        "postgresql_patroni_synchronous_node_count 3",
        "has 2 replica(s)")


def test_timing_that_could_let_the_lock_expire_under_a_live_leader_is_refused(
        tmp_path: Path) -> None:
    controller.assert_refused(
        _run(tmp_path, *_json(postgresql_patroni_ttl=20, postgresql_patroni_retry_timeout=10)),
        "postgresql_patroni_ttl (20) must be at least postgresql_patroni_loop_wait (10) plus twice "
        "postgresql_patroni_retry_timeout (10)")


def test_an_unknown_mode_and_missing_secrets_are_named(tmp_path: Path) -> None:
    # The stack-wide facts' argument specs refuse it before any task.
    controller.assert_refused(_run(tmp_path, "-e", "wops_postgresql_ha_mode=pacemaker"),
                              "value of wops_postgresql_ha_mode must be one of: streaming, "
                              "patroni, got: pacemaker")
    controller.assert_refused(
        _run(tmp_path, "-e", "postgresql_patroni_rest_password_var=vault_nope"),
        "postgresql_patroni_rest_password_var", "vault_nope")
