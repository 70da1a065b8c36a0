"""The fence of a new_host restore holds: preflight refuses, before any change.

playbooks/dr_restore.yml writes a fence marker on the old primary and a
promotion record on the new one (roles/wops/tasks/fence.yml). Here the
markers are files on the controller (wops_postgresql_fence_file and
wops_postgresql_promoted_file point at them, per host when a test needs two
hosts to differ), and the postgresql role, the pgbackrest role and site.yml
run in check mode, preflight tags only, against local hosts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]

SECRETS = [
    "vault_postgresql_replication_password", "vault_postgresql_etl_password",
    "vault_postgresql_reporting_password", "vault_postgresql_airflow_password",
    "vault_postgresql_monitoring_password", "vault_postgresql_admin_password",
    "vault_postgresql_backup_password",
]
MARKER = (
    "# warehouse-ops: PostgreSQL is fenced on this host.\n"
    "fenced_at=2026-11-26T03:20:00Z\n"
    "host=db1\n"
    "new_primary=db3\n"
    "reason=the new_host restore (playbooks/dr_restore.yml) of backup set "
    "20261126-010000F (latest) onto db3\n"
)
RECORD = (
    "promoted_at=2026-11-26T03:25:00Z\n"
    "host=db2\n"
    "replaces=db1\n"
    "reason=the new_host restore (playbooks/dr_restore.yml) of backup set "
    "20261126-010000F (latest)\n"
)
POSTGRESQL_PLAY = ("- name: PostgreSQL\n  hosts: postgres\n  any_errors_fatal: true\n"
                   "  roles:\n    - role: postgresql\n")


def _hosts(tmp_path: Path, marker: dict[str, str] | None = None,
           record: dict[str, str] | None = None) -> str:
    """db1 the primary, db2 its replica; each host's marker and record as given, else none."""
    secrets = "".join(f"    {name}: not-a-real-secret\n" for name in SECRETS)

    def host(name: str) -> str:
        fence = tmp_path / f"{name}.fenced"
        promoted = tmp_path / f"{name}.promoted"
        if marker and name in marker:
            fence.write_text(marker[name])
        if record and name in record:
            promoted.write_text(record[name])
        return (f"            {name}:\n"
                f"              wops_postgresql_fence_file: {fence}\n"
                f"              wops_postgresql_promoted_file: {promoted}\n")

    return (controller.local_hosts(become_su=True, variables=secrets)
            + "  children:\n    postgres:\n      children:\n"
            + "        postgres_primary:\n          hosts:\n" + host("db1")
            + "        postgres_replica:\n          hosts:\n" + host("db2"))


def _postgresql(tmp_path: Path, hosts: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return controller.run(tmp_path, hosts, POSTGRESQL_PLAY,
                          "--check", "--tags", "postgresql_preflight", *extra)


def test_a_fenced_primary_fails_preflight_naming_the_marker_and_the_fix(tmp_path: Path) -> None:
    proc = _postgresql(tmp_path, _hosts(tmp_path, marker={"db1": MARKER}), "--limit", "db1")
    assert proc.returncode != 0
    out = controller.flat(proc.stdout)
    assert f"db1 is fenced: {tmp_path / 'db1.fenced'} on it says that the new_host restore" in out
    assert "made db3 the primary (2026-11-26T03:20:00Z)" in out
    assert "put db3 into postgres_primary and take db1 out of it" in out
    assert "-e postgresql_fence_release=db1" in out
    assert "Nothing was changed." in out
    # The fence check is the first task: nothing else of preflight ran.
    assert "TASK [postgresql : Check the platform, the inventory" not in proc.stdout
    assert "Assert every password comes from a defined secret" not in proc.stdout
    assert "TASK [wops : Refuse a fenced host, a fenced primary" in proc.stdout


def test_a_marker_made_by_hand_fences_too(tmp_path: Path) -> None:
    proc = _postgresql(tmp_path, _hosts(tmp_path, marker={"db1": ""}), "--limit", "db1")
    assert proc.returncode != 0
    out = controller.flat(proc.stdout)
    assert f"db1 is fenced: {tmp_path / 'db1.fenced'} on it says that a fence set by hand" in out


def test_releasing_the_fence_by_name_lets_preflight_pass(tmp_path: Path) -> None:
    hosts = _hosts(tmp_path, marker={"db1": MARKER})
    other = _postgresql(tmp_path, hosts, "--limit", "db1", "-e", "postgresql_fence_release=db2")
    assert other.returncode != 0 and "db1 is fenced" in controller.flat(other.stdout)
    released = _postgresql(tmp_path, hosts, "--limit", "db1", "-e", "postgresql_fence_release=db1")
    assert released.returncode == 0, released.stdout[-3000:]
    assert (tmp_path / "db1.fenced").exists()  # check mode, preflight only: nothing lifted yet


def test_a_replica_of_a_fenced_primary_fails_preflight(tmp_path: Path) -> None:
    # Only db2 runs (say --limit): it reads its primary's marker on db1.
    proc = _postgresql(tmp_path, _hosts(tmp_path, marker={"db1": MARKER}), "--limit", "db2")
    assert proc.returncode != 0
    out = controller.flat(proc.stdout)
    assert "db1, the primary db2 would serve (the first host of postgres_primary), is fenced" in out
    assert f"{tmp_path / 'db1.fenced'} on it says a restore made db3 the primary" in out


def test_a_promoted_host_the_inventory_does_not_name_fails_preflight(tmp_path: Path) -> None:
    proc = _postgresql(tmp_path, _hosts(tmp_path, record={"db2": RECORD}), "--limit", "db2")
    assert proc.returncode != 0
    out = controller.flat(proc.stdout)
    assert "db2 was made the primary by a restore (2026-11-26T03:25:00Z" in out
    assert "replacing db1, but the inventory's primary is db1" in out
    assert "put db2 into postgres_primary and take db1 out of it" in out


def test_the_promoted_host_passes_once_the_inventory_names_it(tmp_path: Path) -> None:
    # db1 holds the record and is the inventory's primary: the inventory agrees.
    proc = _postgresql(tmp_path, _hosts(tmp_path, record={"db1": RECORD}), "--limit", "db1")
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_pgbackrest_refuses_a_fenced_primary(tmp_path: Path) -> None:
    hosts = (controller.local_hosts(
        become_su=True, variables="    pgbackrest_cipher_pass: not-a-real-passphrase-0123\n")
        + "  children:\n    postgres_primary:\n      hosts:\n        db1:\n"
        + f"          wops_postgresql_fence_file: {tmp_path / 'db1.fenced'}\n"
        + f"          wops_postgresql_promoted_file: {tmp_path / 'db1.promoted'}\n")
    (tmp_path / "db1.fenced").write_text(MARKER)
    proc = controller.run(tmp_path, hosts,
                          "- name: pgBackRest\n  hosts: postgres_primary\n"
                          "  roles:\n    - role: pgbackrest\n",
                          "--check", "--tags", "pgbackrest_preflight")
    assert proc.returncode != 0
    out = controller.flat(proc.stdout)
    assert f"db1 is fenced: {tmp_path / 'db1.fenced'}" in out
    assert "Read the running server's archiving settings" not in proc.stdout


@pytest.mark.parametrize(("marker", "record", "named"), [
    ({"db1": MARKER}, None, "db1 is fenced"),
    (None, {"db2": RECORD}, "db2 was made the primary by a restore"),
])
def test_site_stops_before_any_play_changes_a_host(
        tmp_path: Path, marker: dict[str, str] | None, record: dict[str, str] | None,
        named: str) -> None:
    proc = controller.run(
        tmp_path, _hosts(tmp_path, marker=marker, record=record),
        f"- name: The stack\n  ansible.builtin.import_playbook: {ROOT / 'playbooks/site.yml'}\n",
        "--check", "--tags", "postgresql_preflight", merge_stderr=True)
    assert proc.returncode != 0
    assert named in controller.flat(proc.stdout)
    assert "PLAY [Base configuration for every host]" not in proc.stdout
