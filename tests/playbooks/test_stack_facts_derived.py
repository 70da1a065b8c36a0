"""A stack-wide fact changed in one place reaches every role that derives from it.

The inventory sets another PostgreSQL major version, cluster name, stanza, CA
directory, incoming directory and PostgreSQL and pgBouncer ports once
(group_vars/all), as an operator would;
a play loads the roles' own defaults and derived values the way the roles do
and reports what they come to. Nothing is installed: PostgreSQL 16 need not
exist on the controller.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from testbed import controller, stack_facts

ROOT = Path(__file__).resolve().parents[2]

PROBE = """\
- name: What the roles derive from the stack-wide facts
  hosts: probe
  gather_facts: true
  roles:
    - role: wops
  tasks:
    - name: Load the roles' defaults and derived values
      ansible.builtin.include_vars:
        file: "{{ item }}"
      loop:
        - ROOT/roles/postgresql/defaults/main.yml
        - ROOT/roles/postgresql/vars/main.yml
        - ROOT/roles/postgresql/vars/Debian-12.yml
        - ROOT/roles/pgbackrest/defaults/main.yml
        - ROOT/roles/pgbackrest/vars/main.yml
        - ROOT/roles/pg_dump_backup/defaults/main.yml
        - ROOT/roles/pg_dump_backup/vars/main.yml
        - ROOT/roles/pgbouncer/defaults/main.yml
        - ROOT/roles/pgbouncer/vars/main.yml
        - ROOT/roles/warehouse_etl/defaults/main.yml
        - ROOT/roles/airflow/defaults/main.yml
    - name: Report
      ansible.builtin.debug:
        msg:
          postgresql_dropin: "{{ _postgresql_dropin }}"
          postgresql_hba: "{{ _postgresql_hba_file }}"
          postgresql_packages: "{{ _postgresql_packages[:2] }}"
          postgresql_archive_command: "{{ postgresql_archive_command }}"
          postgresql_service: "{{ wops_postgresql_service }}"
          postgresql_log: "{{ wops_postgresql_log }}"
          pgbackrest_bindir: "{{ _pgbackrest_pg_bindir }}"
          pgbackrest_server_packages: "{{ _pgbackrest_packages_server }}"
          pgbackrest_archive_command: "{{ _pgbackrest_archive_command }}"
          pg_dump_backup_bindir: "{{ _pg_dump_backup_settings.bindir }}"
          pg_dump_backup_ca_src: "{{ pg_dump_backup_ca_src }}"
          etl_incoming_dir: "{{ wops_etl_incoming_dir }}"
          ca_dir: "{{ wops_ca_dir }}"
          postgresql_port: "{{ postgresql_port }}"
          postgresql_primary_port: "{{ postgresql_primary_port }}"
          pgbouncer_listen_port: "{{ pgbouncer_listen_port }}"
          pgbouncer_restart_listen_port: "{{ _pgbouncer_restart_values.listen_port }}"
          pgbouncer_backend_port: "{{ pgbouncer_backend_port }}"
          pgbackrest_pg_port: "{{ pgbackrest_pg_port }}"
          pg_dump_backup_port: "{{ pg_dump_backup_port }}"
          pg_dump_backup_settings_port: "{{ _pg_dump_backup_settings.port }}"
          warehouse_etl_db_port: "{{ warehouse_etl_db_port }}"
          airflow_db_port: "{{ airflow_db_port }}"
          airflow_migrate_db_port: "{{ airflow_migrate_db_port }}"
          airflow_warehouse_db_port: "{{ airflow_warehouse_db_port }}"
"""


def _probe(tmp_path: Path, facts: dict[str, object], *extra: str,
           pgbouncer: bool = False) -> dict[str, Any]:
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    # With a pgbouncer group, applications connect to pgBouncer (Airflow's ports).
    groups = ["postgres_primary", *(["pgbouncer"] if pgbouncer else [])]
    (inventory / "hosts.yml").write_text(
        "all:\n  hosts:\n    probe:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {ROOT}/.venv/bin/python\n"
        "  children:\n"
        + "".join(f"    {group}:\n      hosts:\n        probe:\n" for group in groups))
    # The one place: the inventory's group_vars/all.
    (inventory / "group_vars" / "all.yml").write_text(
        "".join(f"{key}: {json.dumps(value)}\n" for key, value in facts.items()))
    play = tmp_path / "probe.yml"
    play.write_text(PROBE.replace("ROOT", str(ROOT)))
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(play), *extra],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env=controller.env(ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_STRATEGY="linear"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    msg: dict[str, Any] = tasks[-1]["hosts"]["probe"]["msg"]
    return msg


def test_one_change_in_the_inventory_reaches_every_role(tmp_path: Path) -> None:
    got = _probe(tmp_path, {
        "wops_postgresql_version": "16",
        "wops_postgresql_cluster": "dwh",
        "wops_pgbackrest_stanza": "sales",
        "wops_ca_dir": "/srv/ca/warehouse",
        "wops_etl_incoming_dir": "/srv/extracts",
        "wops_postgresql_port": 15432,
        "wops_pgbouncer_port": 16432,
    # The probe loads the role's defaults as variables, above the inventory:
    # archiving (a choice of the postgresql role, not a stack-wide fact) is
    # switched on from the command line.
    }, "-e", "postgresql_archive_mode=on", pgbouncer=True)
    assert got == {
        "postgresql_dropin": "/etc/postgresql/16/dwh/conf.d/50-warehouse-ops.conf",
        "postgresql_hba": "/etc/postgresql/16/dwh/pg_hba.conf",
        "postgresql_packages": ["postgresql-16", "postgresql-client-16"],
        "postgresql_archive_command": "pgbackrest --stanza=sales archive-push %p",
        "postgresql_service": "postgresql@16-dwh",
        "postgresql_log": "/var/log/postgresql/postgresql-16-dwh.log",
        "pgbackrest_bindir": "/usr/lib/postgresql/16/bin",
        "pgbackrest_server_packages": ["postgresql-16", "python3-psycopg2"],
        "pgbackrest_archive_command": "pgbackrest --stanza=sales archive-push %p",
        "pg_dump_backup_bindir": "/usr/lib/postgresql/16/bin",
        "pg_dump_backup_ca_src": "/srv/ca/warehouse/ca.crt",
        "etl_incoming_dir": "/srv/extracts",
        "ca_dir": "/srv/ca/warehouse",
        # The cluster runs on the stack's port, and every client reaches it there.
        "postgresql_port": 15432,
        "postgresql_primary_port": 15432,
        "pgbouncer_backend_port": 15432,
        "pgbackrest_pg_port": 15432,
        "pg_dump_backup_port": 15432,
        "pg_dump_backup_settings_port": 15432,
        "airflow_migrate_db_port": 15432,
        # pgBouncer listens on its port, and the applications connect to it.
        "pgbouncer_listen_port": 16432,
        "pgbouncer_restart_listen_port": "16432",
        "warehouse_etl_db_port": 16432,
        "airflow_db_port": 16432,
        "airflow_warehouse_db_port": 16432,
    }


def test_without_archiving_no_archive_command_is_derived(tmp_path: Path) -> None:
    got = _probe(tmp_path, {"wops_environment": "staging"})
    defaults = stack_facts.load()
    assert got["postgresql_archive_command"] == ""
    assert got["postgresql_service"] == defaults["wops_postgresql_service"]
    # The CA follows the environment, and every role issues from the same one.
    assert got["ca_dir"].endswith("/staging")
    assert got["pg_dump_backup_ca_src"] == got["ca_dir"] + "/ca.crt"
    # The default ports, unchanged; without pgBouncer hosts Airflow connects
    # to PostgreSQL itself.
    postgresql = int(defaults["wops_postgresql_port"])
    pgbouncer = int(defaults["wops_pgbouncer_port"])
    assert (postgresql, pgbouncer) == (5432, 6432)
    for name in ("postgresql_port", "pgbouncer_backend_port", "pgbackrest_pg_port",
                 "pg_dump_backup_port", "airflow_migrate_db_port", "airflow_db_port",
                 "airflow_warehouse_db_port"):
        assert got[name] == postgresql, name
    assert got["pgbouncer_listen_port"] == got["warehouse_etl_db_port"] == pgbouncer


def test_a_malformed_fact_is_refused_by_name(tmp_path: Path) -> None:
    try:
        _probe(tmp_path, {"wops_postgresql_version": "16.2"})
    except AssertionError as failed:
        assert "wops_postgresql_version must be a major version" in str(failed)
    else:
        raise AssertionError("a malformed wops_postgresql_version was accepted")


def test_a_port_out_of_range_is_refused_by_name(tmp_path: Path) -> None:
    try:
        _probe(tmp_path, {"wops_pgbouncer_port": 70000})
    except AssertionError as failed:
        assert "wops_postgresql_port and wops_pgbouncer_port TCP ports" in str(failed)
        assert "got 5432 and 70000" in str(failed)
    else:
        raise AssertionError("wops_pgbouncer_port 70000 was accepted")
