"""A new_host restore moves the primary, and the fence holds until the inventory does.

The last checks of the scenario (the file name sorts after test_dr.py): they
move the primary from wops-mol-dr-db to wops-mol-dr-scratch for good and
leave it there. As runbooks/disaster-recovery.md has it, the new host first
joins the inventory as a PostgreSQL host (postgres, not postgres_primary) and
gets PostgreSQL; dr_restore.yml then restores the latest state onto it in
new_host mode, fences the old primary (stopped, disabled, a fence marker, a
systemd refusal to start) and prints the inventory change to make. With the
old inventory, site.yml and the converge refuse in preflight, naming the
marker, and PostgreSQL on the old primary stays down; with the changed
inventory the converge passes and the new primary serves the restored rows.
The scenario has no pgBouncer host: the rows are read over TLS from the
repository host, as a client would connect.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import testinfra.utils.ansible_runner  # noqa: F401 - molecule/conftest.py's hosts fixture needs it loaded
import yaml

from testbed import controller, pg_host, scenario

ROOT = Path(__file__).resolve().parents[3]
DB = "wops-mol-dr-db"
REPO = "wops-mol-dr-backup"
SCRATCH = "wops-mol-dr-scratch"
VAULT = ROOT / "inventory/dev/group_vars/all/vault.yml"
LABEL = "before-new-host-restore"


def _run(playbook: Path, inventories: list[Path], *args: str) -> subprocess.CompletedProcess[str]:
    sources = [arg for inventory in inventories for arg in ("-i", str(inventory))]
    return subprocess.run(
        ["ansible-playbook", *sources, str(playbook), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=scenario.ansible_env(), check=False, cwd=ROOT)


_sql = pg_host.sql


def _molecule_inventory() -> Path:
    return Path(os.environ["MOLECULE_INVENTORY_FILE"])


@pytest.fixture(scope="module")
def old_inventory(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The scenario's inventory, with the new host added as a PostgreSQL host (not the primary)."""
    extra = tmp_path_factory.mktemp("old-inventory") / "new-host.yml"
    extra.write_text(yaml.safe_dump({"all": {"children": {"postgres": {"children": {
        "postgres_new": {"hosts": {SCRATCH: None}}}}}}}))
    return [_molecule_inventory(), extra]


@pytest.fixture(scope="module")
def new_inventory(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The inventory changed as the restore says: the new host is the primary, the old one out."""
    source = _molecule_inventory()
    current = yaml.safe_load(source.read_text())
    directory = tmp_path_factory.mktemp("new-inventory")
    for name in ("group_vars", "host_vars"):
        if (source.parent / name).is_dir():
            (directory / name).symlink_to(source.parent / name)
    connection = current["all"]["hosts"]
    hosts = directory / "hosts.yml"
    hosts.write_text(yaml.safe_dump({
        "all": {"vars": current["all"].get("vars", {}),
                "hosts": {SCRATCH: connection[SCRATCH], REPO: connection[REPO]}},
        "postgres": {"hosts": {SCRATCH: None}},
        "postgres_primary": {"hosts": {SCRATCH: None}},
        "backup": {"hosts": {REPO: None}},
    }))
    return [hosts]


@pytest.fixture(scope="module")
def restore(hosts: dict[str, Any], old_inventory: list[Path]) -> dict[str, Any]:
    """The new host gets PostgreSQL, then the latest state is restored onto it (new_host)."""
    db = hosts[DB]
    assert _sql(db, "SELECT to_regclass('warehouse.fact_sales') IS NOT NULL") == "t", \
        "runs after test_dr.py, whose fixture loads the warehouse"
    prepared = _run(ROOT / "molecule/dr/converge.yml", old_inventory,
                    "--limit", SCRATCH, "--tags", "postgresql")
    assert prepared.returncode == 0, prepared.stdout[-4000:]

    _sql(db, f"INSERT INTO dr.markers (label, drill_id) VALUES ('{LABEL}', 'molecule')")
    pg_host.archive_current_wal(db)
    facts = int(_sql(db, "SELECT count(*) FROM warehouse.fact_sales"))

    play = _run(ROOT / "playbooks/dr_restore.yml", old_inventory, "-e", f"@{VAULT}",
                "-e", f"dr_restore_host={SCRATCH}")
    assert play.returncode == 0, play.stdout[-5000:]
    return {"facts": facts, "output": controller.flat(play.stdout)}


def test_new_host_restore_fences_the_old_primary_and_prints_the_inventory_change(
        hosts: dict[str, Any], restore: dict[str, Any], stack: dict[str, str]) -> None:
    db, scratch = hosts[DB], hosts[SCRATCH]
    service = stack["wops_postgresql_service"]
    fence = stack["wops_postgresql_fence_file"]
    out = restore["output"]
    assert f"FENCE: {DB} is fenced: {fence} names {SCRATCH} as the primary" in out, out[-4000:]
    assert "PostgreSQL there is stopped and disabled" in out
    assert f"put {SCRATCH} into postgres_primary and take it out of" in out
    assert f"take {DB} out of postgres_primary" in out
    assert f"-e postgresql_fence_release={DB} -e postgresql_replica_rebuild=true" in out

    # The old primary: stopped, disabled, fenced, and systemd refuses to start it.
    assert db.run("systemctl is-active --quiet %s", service).rc != 0
    # Not enabled by the play. Debian's postgresql generator still wants every
    # cluster whose start.conf says auto at boot (is-enabled: enabled-runtime):
    # the drop-in is what refuses those starts, checked below, also through
    # postgresql.service, the unit boot starts.
    enabled = db.run("systemctl is-enabled %s", service).stdout.strip()
    assert enabled != "enabled", enabled
    marker = db.file(fence).content_string
    assert f"new_primary={SCRATCH}" in marker and f"host={DB}" in marker
    assert "reason=the new_host restore (playbooks/dr_restore.yml) of backup set" in marker
    assert f"AssertPathExists=!{fence}" in db.check_output("systemctl cat %s", service)
    refused = db.run("systemctl start %s", service)
    assert refused.rc != 0, "systemd started the fenced cluster"
    # Refused by the fence's assertion, not by some other failure to start.
    assert db.check_output("systemctl show -p AssertResult --value %s", service) == "no", \
        refused.stderr
    assert db.run("systemctl is-active --quiet %s", service).rc != 0
    umbrella = db.run("systemctl start postgresql.service")
    assert umbrella.rc == 0, umbrella.stderr
    assert db.run("systemctl is-active --quiet %s", service).rc != 0, \
        "starting postgresql.service (as boot does) started the fenced cluster"

    # The new primary: out of recovery, with the rows committed before the restore.
    assert _sql(scratch, "SELECT pg_is_in_recovery()", db="postgres") == "f"
    assert _sql(scratch, f"SELECT count(*) FROM dr.markers WHERE label = '{LABEL}'") == "1"
    assert int(_sql(scratch, "SELECT count(*) FROM warehouse.fact_sales")) == restore["facts"]
    record = scratch.file(stack["wops_postgresql_promoted_file"]).content_string
    assert f"replaces={DB}" in record


def test_the_old_inventory_is_refused_and_the_old_primary_stays_down(
        hosts: dict[str, Any], restore: dict[str, Any], old_inventory: list[Path],
        stack: dict[str, str]) -> None:
    fence = stack["wops_postgresql_fence_file"]
    # site.yml stops before its first play that changes a host.
    site = _run(ROOT / "playbooks/site.yml", old_inventory)
    out = controller.flat(site.stdout)
    assert site.returncode != 0
    assert f"{DB} is fenced: {fence} on it says that the new_host restore" in out, out[-4000:]
    assert f"put {SCRATCH} into postgres_primary and take {DB} out of it" in out
    assert "PLAY [Base configuration for every host]" not in site.stdout
    # The converge's postgresql play: the role's own preflight refuses the fenced host
    # first, and stops the new one with it (any_errors_fatal, as in site.yml).
    converge = _run(ROOT / "molecule/dr/converge.yml", old_inventory, "--tags", "postgresql")
    out = controller.flat(converge.stdout)
    assert converge.returncode != 0
    assert f"{DB} is fenced: {fence} on it says that the new_host restore" in out, out[-4000:]
    assert "Install the PostgreSQL server" not in converge.stdout
    service = stack["wops_postgresql_service"]
    assert hosts[DB].run("systemctl is-active --quiet %s", service).rc != 0
    assert hosts[DB].run("systemctl is-enabled %s", service).stdout.strip() != "enabled"


def test_the_changed_inventory_serves_the_restored_rows_from_the_new_primary(
        hosts: dict[str, Any], restore: dict[str, Any], new_inventory: list[Path],
        secrets: dict[str, str], stack: dict[str, str]) -> None:
    converge = _run(ROOT / "molecule/dr/converge.yml", new_inventory, "--skip-tags", "common")
    assert converge.returncode == 0, converge.stdout[-5000:]
    scratch, repo = hosts[SCRATCH], hosts[REPO]
    # The inventory agrees with the restore now: the promotion record is settled.
    assert not scratch.file(stack["wops_postgresql_promoted_file"]).exists
    # A client (the repository host) reads the restored rows over TLS, as reporting.
    read = repo.run(
        "PGPASSWORD=%s psql %s -XAtc %s", secrets["vault_postgresql_reporting_password"],
        f"host={SCRATCH} port=5432 dbname=warehouse user=reporting sslmode=require "
        "connect_timeout=10",
        "SELECT count(*) FROM warehouse.fact_sales")
    assert read.rc == 0, read.stderr
    assert int(read.stdout.strip()) == restore["facts"]
    # Backups and archiving follow the new primary.
    check = repo.run("runuser -u pgbackrest -- pgbackrest --stanza=%s check",
                     stack["wops_pgbackrest_stanza"])
    assert check.rc == 0, check.stderr
    info = json.loads(repo.check_output("runuser -u pgbackrest -- pgbackrest --stanza=%s "
                                        "--output=json info", stack["wops_pgbackrest_stanza"]))
    assert info[0]["status"]["code"] == 0
    # The old primary is out of the inventory, still down and still fenced.
    db = hosts[DB]
    assert db.run("systemctl is-active --quiet %s", stack["wops_postgresql_service"]).rc != 0
    assert db.file(stack["wops_postgresql_fence_file"]).exists


def test_dr_fence_fences_an_old_primary_that_answers_again(
        hosts: dict[str, Any], restore: dict[str, Any], old_inventory: list[Path],
        stack: dict[str, str]) -> None:
    """playbooks/dr_fence.yml, for an old primary the restore could not reach.

    The old primary is put back as such a host is when it answers again: no
    marker, no drop-in, PostgreSQL running. dr_fence.yml fences it as the
    restore would have: stopped, marker naming the new primary, starts refused.
    """
    db = hosts[DB]
    service, fence = stack["wops_postgresql_service"], stack["wops_postgresql_fence_file"]
    dropin = f"/etc/systemd/system/{service}.service.d/50-warehouse-ops-fence.conf"
    unfenced = db.run("rm -f %s %s && systemctl daemon-reload && systemctl start %s",
                      fence, dropin, service)
    assert unfenced.rc == 0, unfenced.stderr
    assert db.run("systemctl is-active --quiet %s", service).rc == 0
    assert _sql(db, "SELECT pg_is_in_recovery()", db="postgres") == "f"

    play = _run(ROOT / "playbooks/dr_fence.yml", old_inventory, "-e", f"@{VAULT}",
                "-e", f"dr_fence_host={DB}", "-e", f"dr_fence_new_primary={SCRATCH}")
    out = controller.flat(play.stdout)
    assert play.returncode == 0, out[-4000:]
    assert f"{DB} is fenced: {fence} names {SCRATCH} as the primary" in out, out[-4000:]
    assert db.run("systemctl is-active --quiet %s", service).rc != 0
    marker = db.file(fence).content_string
    assert f"new_primary={SCRATCH}" in marker and f"host={DB}" in marker
    assert "(fenced afterwards with playbooks/dr_fence.yml)" in marker
    assert db.file(dropin).contains(f"AssertPathExists=!{fence}")
    refused = db.run("systemctl start %s", service)
    assert refused.rc != 0, "systemd started the fenced cluster"
    assert db.run("systemctl is-active --quiet %s", service).rc != 0
    # A request that names no new primary is refused before any host is touched.
    bad = _run(ROOT / "playbooks/dr_fence.yml", old_inventory, "-e", f"@{VAULT}",
               "-e", f"dr_fence_host={DB}")
    assert bad.returncode != 0
    assert "Set -e dr_fence_host=<host> to the host to fence" in controller.flat(bad.stdout)
    assert "Nothing was changed" in controller.flat(bad.stdout)
