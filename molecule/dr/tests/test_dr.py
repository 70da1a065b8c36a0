"""Backup and disaster recovery end to end, on the scenario's three hosts.

The warehouse is loaded with the ETL (scale factor 0.01, from the
controller over TLS), backed up, written to around a remembered point in
time, and restored onto the scratch host by the drill playbook; the
restored copy must hold exactly what was committed before that point.
Then: a restore beyond the archived WAL is refused before the target is
touched, archiving and backups survive a PostgreSQL restart, the runbook
driver reports and pushes metrics, and a corrupted backup file makes verify
and the drill fail.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import testinfra.utils.ansible_runner  # noqa: F401 - molecule/conftest.py's hosts fixture needs it loaded

from testbed import pg_host, scenario

ROOT = Path(__file__).resolve().parents[3]
DB = "wops-mol-dr-db"
REPO = "wops-mol-dr-backup"
SCRATCH = "wops-mol-dr-scratch"
VAULT = ROOT / "inventory/dev/group_vars/all/vault.yml"



def _playbook(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         str(ROOT / "playbooks" / name), *args],
        # ansible-core 2.19 prints task errors on stderr: one stream to search.
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=scenario.ansible_env(),
        check=False, cwd=ROOT,
    )


_sql = pg_host.sql


def _pgbackrest(host: Any, stanza: str, *args: str) -> Any:
    """A pgBackRest command on the stanza, as the repository owner."""
    return host.run("runuser -u pgbackrest -- pgbackrest --stanza=%s" + " %s" * len(args),
                    stanza, *args)


@pytest.fixture(scope="module")
def stanza(stack: dict[str, str]) -> str:
    """The warehouse cluster's pgBackRest stanza."""
    return stack["wops_pgbackrest_stanza"]


@pytest.fixture(scope="module")
def warehouse(hosts: dict[str, Any], secrets: dict[str, str],
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """The warehouse loaded by the ETL (SF 0.01), run from the controller over TLS."""
    address = subprocess.run(
        ["podman", "inspect", DB, "--format",
         "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"],
        capture_output=True, text=True, check=True).stdout.strip()
    etl = str(ROOT / ".venv/bin/etl")
    env = dict(os.environ,
               ETL_DSN=f"host={address} port=5432 dbname=warehouse user=etl sslmode=require "
                       "connect_timeout=10",
               PGPASSWORD=secrets["vault_postgresql_etl_password"], ETL_WORKERS="1")
    batch = tmp_path_factory.mktemp("etl") / "batch_0001"
    for args in (["generate", "--scale-factor", "0.01", "--output", str(batch)],
                 ["migrate"], ["load", str(batch), "--no-progress"]):
        proc = subprocess.run([etl, *args], capture_output=True, text=True, env=env, check=False)
        assert proc.returncode == 0, f"etl {args[0]}: {proc.stderr[-2000:]}"
    counts = _sql(hosts[DB], "SELECT (SELECT count(*) FROM warehouse.fact_sales) || ' ' || "
                             "(SELECT count(*) FROM warehouse.dim_customer)")
    facts, customers = (int(x) for x in counts.split())
    assert facts > 50000 and customers > 1000
    return {"fact_sales": facts, "dim_customer": customers}


def test_repository_host_holds_the_only_passphrase(hosts: dict[str, Any],
                                                   secrets: dict[str, str], stanza: str) -> None:
    passphrase = secrets["vault_pgbackrest_cipher_pass"]
    secret_file = hosts[REPO].file("/etc/pgbackrest/conf.d/secrets.conf")
    assert secret_file.mode == 0o640 and secret_file.group == "pgbackrest"
    assert passphrase in secret_file.content_string
    assert passphrase not in hosts[REPO].file("/etc/pgbackrest/pgbackrest.conf").content_string
    for name in (DB, SCRATCH):
        assert not hosts[name].file("/etc/pgbackrest/conf.d/secrets.conf").exists
        conf = hosts[name].file("/etc/pgbackrest/pgbackrest.conf").content_string
        assert f"repo1-host={REPO}" in conf and passphrase not in conf
    info = json.loads(_pgbackrest(hosts[REPO], stanza, "--output=json", "info")
                      .stdout)
    assert info[0]["cipher"] == "aes-256-cbc"


def test_backup_timers_are_installed(hosts: dict[str, Any]) -> None:
    repo = hosts[REPO]
    for kind, calendar in (("full", "Sun *-*-* 01:00:00"), ("diff", "Mon..Sat *-*-* 01:00:00"),
                           ("incr", "*-*-* 02..23:00:00")):
        timer = repo.file(f"/etc/systemd/system/pgbackrest-{kind}.timer").content_string
        assert f"OnCalendar={calendar}" in timer
        assert f"Unit=pgbackrest-backup@{kind}.service" in timer
    verify = repo.run("systemd-analyze verify /etc/systemd/system/pgbackrest-full.timer "
                      "/etc/systemd/system/pgbackrest-backup@.service")
    assert verify.rc == 0, verify.stderr
    # The scenario keeps them idle (pgbackrest_timers_enabled: false).
    assert not repo.service("pgbackrest-full.timer").is_running


def test_archive_settings_and_check(hosts: dict[str, Any], stanza: str,
                                    stack: dict[str, str]) -> None:
    settings = _sql(hosts[DB], "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) "
                               "FROM pg_settings WHERE name IN ('archive_mode', "
                               "'archive_command', 'archive_timeout')", db="postgres")
    assert "archive_mode=on" in settings and "archive_timeout=60" in settings
    assert f"archive_command={stack['wops_archive_command']}" in settings
    check = _pgbackrest(hosts[REPO], stanza, "check")
    assert check.rc == 0, check.stderr


def test_new_stanza_got_its_first_full_backup(hosts: dict[str, Any], stanza: str) -> None:
    """pgbackrest_initial_backup: converge leaves a restorable stanza behind."""
    info = json.loads(_pgbackrest(hosts[REPO], stanza, "--output=json", "info")
                      .stdout)
    assert info[0]["status"]["code"] == 0, info[0]["status"]
    assert info[0]["backup"][0]["type"] == "full"
    assert info[0]["backup"][0]["error"] is False


def test_backup_playbook_reports_label_size_and_duration(
        hosts: dict[str, Any], warehouse: dict[str, int], stanza: str) -> None:
    play = _playbook("backup.yml", "-e", "backup_type=full")
    assert play.returncode == 0, play.stdout[-3000:]
    match = re.search(r"full backup (\d{8}-\d{6}F) took (\d+) s", play.stdout)
    assert match, play.stdout[-2000:]
    assert re.search(r"database [\d.]+ MiB, changed [\d.]+ MiB, stored [\d.]+ MiB", play.stdout)
    info = json.loads(_pgbackrest(hosts[REPO], stanza, "--output=json", "info")
                      .stdout)
    assert info[0]["backup"][-1]["label"] == match.group(1)
    refused = _playbook("backup.yml", "-e", "backup_type=weekly")
    assert refused.returncode != 0 and "backup_type is 'weekly'" in refused.stdout


def _json_result(output: str) -> dict[str, Any]:
    """The module's result from the json callback's output (other callbacks may add lines)."""
    start = output.index("{\n")
    data, _end = json.JSONDecoder().raw_decode(output[start:])
    result: dict[str, Any] = data["plays"][0]["tasks"][0]["hosts"][DB]
    return result


def _checksums_now(tmp_path: Path) -> dict[str, Any]:
    """pg_table_checksums on the primary at a consistent point, as the test's 'remembered time'."""
    env = dict(scenario.ansible_env(), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run(
        ["ansible", "-i", os.environ["MOLECULE_INVENTORY_FILE"], DB, "-b", "--become-user",
         "postgres", "-m", "pg_table_checksums", "-a", "consistent_point=true"],
        capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:]
    result: dict[str, Any] = _json_result(proc.stdout)
    assert result["changed"] is False and result["tables"]
    return result


def test_drill_to_a_remembered_time_restores_exactly_what_was_committed_before_it(
        hosts: dict[str, Any], warehouse: dict[str, int], tmp_path: Path) -> None:
    db = hosts[DB]
    _sql(db, "DELETE FROM warehouse.ref_region WHERE region_key IN (1001, 1002); "
             "DELETE FROM dr.markers WHERE drill_id = 'molecule'")
    # More writes after the full backup: kept by the restore.
    _sql(db, "INSERT INTO warehouse.ref_region VALUES (1001, 'W1', 'before the target', 0); "
             "UPDATE warehouse.dim_customer SET comment = comment || ' w1' "
             "WHERE customer_key % 7 = 0")
    _sql(db, "INSERT INTO dr.markers (label, drill_id) VALUES ('test-before', 'molecule')")
    time.sleep(1)
    remembered = _checksums_now(tmp_path)
    target = remembered["snapshot_time"]
    time.sleep(1)
    # More writes after the remembered time: gone after the restore.
    _sql(db, "INSERT INTO dr.markers (label, drill_id) VALUES ('test-after', 'molecule')")
    _sql(db, "INSERT INTO warehouse.ref_region VALUES (1002, 'W2', 'after the target', 0); "
             "DELETE FROM warehouse.fact_sales WHERE orderkey % 50 = 0; "
             "UPDATE warehouse.dim_customer SET comment = comment || ' w2' "
             "WHERE customer_key % 5 = 0")
    after = int(_sql(db, "SELECT count(*) FROM warehouse.fact_sales"))
    assert after < warehouse["fact_sales"]

    sums = tmp_path / "sums.json"
    sums.write_text(json.dumps({"dr_drill_source_checksums": remembered["tables"]}))
    result_file = tmp_path / "drill.json"
    play = _playbook("dr_drill.yml", "-e", f"dr_drill_target_time={target}", "-e", f"@{sums}",
                     "-e", "dr_drill_keep=true", "-e", f"dr_drill_result_file={result_file}")
    assert play.returncode == 0, play.stdout[-4000:]
    result = json.loads(result_file.read_text())
    assert result["verified"] is True
    assert result["checks"]["checksums_match"] is True
    assert result["checks"]["mismatches"] == []
    assert result["checks"]["amcheck_indexes"] > 5
    assert result["checks"]["markers_missing"] == []
    assert result["checks"]["markers_unexpected"] == []
    assert result["checks"]["repository_verified"] is True
    assert 0 < result["rto_seconds"] < 1800
    assert 0 <= result["rpo_seconds"] <= 300
    # Recovery stopped after the last commit before the target (the test-before
    # marker or later), and not after the target.
    before_at = _sql(db, "SELECT to_char(inserted_at AT TIME ZONE 'UTC', "
                         "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"') FROM dr.markers "
                         "WHERE drill_id = 'molecule' AND label = 'test-before'")
    assert before_at <= result["last_replayed"] <= target
    assert result["pitr_gap_seconds"] is not None and 0 <= result["pitr_gap_seconds"] < 60
    assert set(result["phases"]) >= {"discover", "mark", "ship", "restore", "recover", "verify"}

    # The copy on the scratch host, queried directly: before yes, after no.
    copy = hosts[SCRATCH]
    regions = _sql(copy, "SELECT string_agg(region_key::text, ',' ORDER BY region_key) "
                         "FROM warehouse.ref_region WHERE region_key > 1000", port=5433)
    assert regions == "1001"
    assert int(_sql(copy, "SELECT count(*) FROM warehouse.fact_sales", port=5433)) \
        == remembered["tables"]["warehouse.fact_sales"]["rows"] == warehouse["fact_sales"]
    labels = _sql(copy, "SELECT string_agg(label, ',' ORDER BY id) FROM dr.markers "
                        "WHERE drill_id = 'molecule'", port=5433)
    assert labels == "test-before"
    assert _sql(copy, "SELECT count(*) FROM warehouse.dim_customer WHERE comment LIKE '% w2'",
                port=5433) == "0"
    assert copy.run("systemctl stop wops-dr-drill.service").rc == 0


class _Pushgateway(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, str, str]] = []  # noqa: RUF012 - shared by the test on purpose

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        self.received.append(("PUT", self.path, body))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture()
def pushgateway() -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    _Pushgateway.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Pushgateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Pushgateway.received
    server.shutdown()


def test_runbook_driver_drills_reports_and_pushes_metrics(
        hosts: dict[str, Any], warehouse: dict[str, int], tmp_path: Path,
        pushgateway: tuple[str, list[tuple[str, str, str]]], stanza: str) -> None:
    url, received = pushgateway
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/python"), str(ROOT / "runbooks/dr_drill.py"),
         "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--report-dir", str(tmp_path),
         "--pushgateway", url, "--quiet"],
        capture_output=True, text=True, env=scenario.ansible_env(), check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    reports = sorted(tmp_path.glob("dr-drill-*.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["status"] == "verified" and report["data_verified"] is True
    assert [p["number"] for p in report["phases"]] == [1, 2, 3, 4, 5, 6, 7]
    assert all(p["seconds"] > 0 and p["status"] == "ok" for p in report["phases"])
    assert report["rto_seconds"] > 0
    assert 0 <= report["rpo_seconds"] <= report["rpo_target_seconds"]
    markdown = reports[0].with_suffix(".md").read_text()
    assert "| # | Phase | Seconds | Tasks | Status |" in markdown
    assert "| 4 | restore the backup onto the scratch host |" in markdown
    assert received, "nothing was pushed"
    _method, path, body = received[-1]
    assert path == "/metrics/job/wops_dr_drill/environment/dev"
    assert "wops_dr_drill_success 1.0" in body
    assert "wops_dr_drill_data_verified 1.0" in body
    assert re.search(r"wops_dr_drill_rto_seconds [\d.e+]+", body)
    assert 'wops_dr_drill_phase_seconds{phase="restore the backup onto the scratch host"}' in body
    # The drill's own markers: one before and one after its target.
    assert re.fullmatch(r"\d{8}T\d{6}Z", report["drill_id"])
    query = "SELECT string_agg(label, ',' ORDER BY id) FROM dr.markers WHERE drill_id = '%s'"
    labels = _sql(hosts[DB], query % report["drill_id"])
    assert labels == "before,after"
    # Cleaned up: no copy left running.
    assert not hosts[SCRATCH].file(f"/var/lib/postgresql/dr-drill/{stanza}").exists


def test_a_drill_without_evidence_fails_and_names_what_is_missing(
        hosts: dict[str, Any], warehouse: dict[str, int], tmp_path: Path,
        stack: dict[str, str]) -> None:
    # The primary's pg_waldump cannot run (the RPO cannot be measured) and the
    # drilled schema has no table: the drill must not report VERIFIED.
    db = hosts[DB]
    # A commit the archive does not have yet: there is unarchived WAL to read.
    _sql(db, "CREATE SCHEMA IF NOT EXISTS dr_empty")
    _sql(db, "INSERT INTO dr.markers (label, drill_id) VALUES ('unarchived', 'molecule')")
    waldump = f"{stack['wops_postgresql_bin_dir']}/pg_waldump"
    assert db.run("chmod 0700 %s && chown root %s", waldump, waldump).rc == 0
    try:
        proc = subprocess.run(
            [str(ROOT / ".venv/bin/python"), str(ROOT / "runbooks/dr_drill.py"),
             "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--report-dir", str(tmp_path),
             "-e", json.dumps({"dr_drill_schemas": ["dr_empty"]}), "--quiet"],
            capture_output=True, text=True, env=scenario.ansible_env(), check=False, cwd=ROOT)
    finally:
        db.run("chmod 0755 %s", waldump)
        hosts[SCRATCH].run("systemctl stop wops-dr-drill.service")
    assert proc.returncode != 0
    report = json.loads(next(tmp_path.glob("dr-drill-*.json")).read_text())
    assert report["status"] == "failed" and report["data_verified"] is False
    reasons = "\n".join(report["reasons"])
    assert "missing evidence: RPO: pg_waldump could not read the primary's WAL" in reasons, reasons
    assert "missing evidence: no table with rows was compared (0 tables, 0 rows in dr_empty)" \
        in reasons, reasons
    assert report["rpo_seconds"] is None


def _changed_since_boot(host: Any) -> list[str]:
    """'path mtime' of everything under the restore's paths changed since the host was made."""
    found = host.run("find /var/lib/postgresql /var/log/pgbackrest -newer /etc/hostname "
                     "-printf '%p %T@\\n'")
    assert found.rc == 0, found.stderr
    return sorted(found.stdout.splitlines())


def test_restore_beyond_the_archived_wal_is_refused_before_touching_the_host(
        hosts: dict[str, Any], warehouse: dict[str, int], stack: dict[str, str]) -> None:
    scratch = hosts[SCRATCH]
    data_dir = stack["wops_postgresql_data_dir"]
    sentinel = f"{data_dir}/sentinel"
    made = scratch.run("mkdir -p %s && touch %s", data_dir, sentinel)
    assert made.rc == 0, made.stderr
    before = _changed_since_boot(scratch)
    # The listing sees what a restore would replace: the sentinel in the data directory.
    assert any(line.startswith(f"{sentinel} ") for line in before), before[-20:]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat(timespec="seconds")
    play = _playbook("dr_restore.yml", "-e", f"@{VAULT}", "-e", f"dr_restore_host={SCRATCH}",
                     "-e", "dr_restore_target_type=time", "-e", f"dr_restore_target={future}")
    assert play.returncode != 0
    assert "Refusing to restore" in play.stdout and "beyond the archived WAL" in play.stdout
    assert "Restore 2/7" not in play.stdout
    recap = play.stdout.split("PLAY RECAP")[-1]
    assert not re.search(r"changed=[1-9]", recap), recap
    after = _changed_since_boot(scratch)
    assert after == before
    assert scratch.file(sentinel).is_file
    # An unknown restore point is refused the same way.
    named = _playbook("dr_restore.yml", "-e", f"@{VAULT}", "-e", f"dr_restore_host={SCRATCH}",
                      "-e", "dr_restore_target_type=name", "-e", "dr_restore_target=no-such-point")
    assert named.returncode != 0 and "no restore point named 'no-such-point'" in named.stdout
    # The version's directory (/var/lib/postgresql/<version>), made above.
    scratch.run("rm -rf %s", str(PurePosixPath(data_dir).parent))


def test_archiving_and_backups_continue_after_a_postgresql_restart(
        hosts: dict[str, Any], warehouse: dict[str, int], stanza: str,
        stack: dict[str, str]) -> None:
    db = hosts[DB]
    failed_before = int(_sql(db, "SELECT failed_count FROM pg_stat_archiver", db="postgres"))
    assert db.run("systemctl restart %s", stack["wops_postgresql_service"]).rc == 0
    for _ in range(30):
        if db.run("runuser -u postgres -- pg_isready -q").rc == 0:
            break
        time.sleep(1)
    _sql(db, "INSERT INTO dr.markers (label, drill_id) VALUES ('after-restart', 'molecule')")
    pg_host.archive_current_wal(db)
    assert int(_sql(db, "SELECT failed_count FROM pg_stat_archiver", db="postgres")) \
        == failed_before
    play = _playbook("backup.yml", "-e", "backup_type=incr")
    assert play.returncode == 0, play.stdout[-3000:]
    assert re.search(r"incr backup \d{8}-\d{6}F_\d{8}-\d{6}I took", play.stdout)
    check = _pgbackrest(hosts[REPO], stanza, "check")
    assert check.rc == 0, check.stderr


def test_corrupted_backup_file_fails_verify_and_the_drill(
        hosts: dict[str, Any], warehouse: dict[str, int], tmp_path: Path, stanza: str) -> None:
    repo = hosts[REPO]
    info = json.loads(_pgbackrest(repo, stanza, "--output=json", "info").stdout)
    full = [b["label"] for b in info[0]["backup"] if b["type"] == "full"][-1]
    # The largest file of the full backup: a warehouse table's data.
    victim = repo.check_output(
        f"find /var/lib/pgbackrest/backup/{stanza}/{full}/pg_data/base -type f "
        "-printf '%s %p\\n' | sort -n | tail -n 1 | cut -d' ' -f2")
    assert repo.run("cp -p %s /root/victim.orig", victim).rc == 0
    try:
        assert repo.run(f"printf 'corrupt' | dd of={victim} bs=1 seek=64 conv=notrunc").rc == 0
        verify = _pgbackrest(repo, stanza, "--output=text", "--verbose", "verify")
        # pgbackrest verify reports what it found and exits 0 either way: the
        # report is the evidence (it prints a status line only when verbose
        # or in error).
        assert "status: error" in verify.stdout and "checksum invalid: 1" in verify.stdout, \
            verify.stdout[-2000:] + verify.stderr[-2000:]
        play = _playbook("dr_drill.yml")
        assert play.returncode != 0
        out = play.stdout
        # The drill failed because of the damaged file, and said so: either
        # the restore phase stopped (pgBackRest checks each file it restores;
        # the drills before this one restored the same backup), or the
        # verdict named pgbackrest verify's finding. Task names mention
        # checksums in every drill, so the words alone prove nothing.
        first_fatal = out.find("fatal:")
        failed_play = (out[out.rfind("PLAY [", 0, first_fatal):first_fatal]
                       if first_fatal > 0 else "")
        restore_refused = failed_play.startswith("PLAY [Drill 4/7 - restore")
        damaged = victim.split(f"/{full}/", 1)[1]
        verify_refused = re.search(
            r"DR drill FAILED verification:.*pgbackrest verify: .*checksum invalid: 1", out, re.S)
        assert restore_refused or verify_refused, (damaged, out[-3000:])
        assert not re.search(r"DR drill \S+: VERIFIED", out)
    finally:
        put_back = repo.run("cp -p /root/victim.orig %s", victim)
        hosts[SCRATCH].run("systemctl stop wops-dr-drill.service")
    assert put_back.rc == 0, put_back.stderr
    verify = _pgbackrest(repo, stanza, "--output=text", "--verbose", "verify")
    assert verify.rc == 0 and "status: ok" in verify.stdout, \
        verify.stdout[-2000:] + verify.stderr[-2000:]


def _module(args: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    env = dict(scenario.ansible_env(), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run(
        ["ansible", "-i", os.environ["MOLECULE_INVENTORY_FILE"], DB, "-b", "--become-user",
         "postgres", "-m", "pg_table_checksums", "-a", args, *extra],
        capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    return proc.returncode, _json_result(proc.stdout), proc.stdout


def test_checksum_module_is_read_only_and_names_missing_tables(
        warehouse: dict[str, int]) -> None:
    rc_check, in_check, _ = _module("schemas=warehouse", "--check")
    rc_real, real, _ = _module("schemas=warehouse")
    assert rc_check == 0 and rc_real == 0
    assert in_check["changed"] is False and real["changed"] is False
    assert in_check["tables"] == real["tables"]
    assert real["tables"]["warehouse.fact_sales"]["rows"] > 0
    rc, compared, _ = _module("schemas=warehouse fail_on_mismatch=true expected={{ expected }}",
                              "-e", json.dumps({"expected": real["tables"]}))
    assert rc == 0 and compared["matches"] is True and compared["mismatches"] == []
    rc, missing, _ = _module("tables=warehouse.nope")
    assert rc != 0 and "tables not found in the database: warehouse.nope" in missing["msg"]


def test_logical_dump_run_list_validate_restore(hosts: dict[str, Any], warehouse: dict[str, int],
                                                secrets: dict[str, str]) -> None:
    repo = hosts[REPO]
    # The dump logs in as backup, which may read every table and do nothing else.
    assert _sql(hosts[DB], "SELECT rolcreatedb OR rolcreaterole OR rolsuper "
                "OR pg_has_role('backup', 'pg_write_all_data', 'member') "
                "OR NOT pg_has_role('backup', 'pg_read_all_data', 'member') "
                "FROM pg_roles WHERE rolname = 'backup'", db="postgres") == "f"
    run = repo.run("runuser -u pgdump -- wops-pgdump run")
    assert run.rc == 0, run.stderr
    dump = json.loads(run.stdout.splitlines()[0])["dump"]
    listing = json.loads(repo.check_output("runuser -u pgdump -- wops-pgdump list --json"))
    assert listing[0]["file"] == dump.rsplit("/", 1)[1] and listing[0]["kept_as"] != "expires"
    assert repo.run("runuser -u pgdump -- wops-pgdump validate").rc == 0
    # backup cannot create the database to restore into; admin can.
    denied = repo.run("runuser -u pgdump -- wops-pgdump restore %s --target-db "
                      "warehouse_restored --create", dump)
    # (refused by pg_hba before CREATEDB is even asked: backup may only open the warehouse)
    assert denied.rc == 1 and ("permission denied to create database" in denied.stderr or (
        "no pg_hba.conf entry" in denied.stderr and 'user "backup"' in denied.stderr)), \
        denied.stderr
    restore = repo.run("runuser -u pgdump -- env PGPASSWORD=%s wops-pgdump restore %s "
                       "--target-db warehouse_restored --create --user admin",
                       secrets["vault_postgresql_admin_password"], dump)
    assert restore.rc == 0, restore.stderr
    facts = _sql(hosts[DB], "SELECT count(*) FROM warehouse.fact_sales", db="warehouse_restored")
    assert int(facts) == int(_sql(hosts[DB], "SELECT count(*) FROM warehouse.fact_sales"))
    _sql(hosts[DB], "DROP DATABASE warehouse_restored", db="postgres")
    # A damaged dump is caught and refused (the intact copy is kept aside).
    kept = repo.run("cp -p %s /tmp/intact.dump", dump)
    assert kept.rc == 0, kept.stderr
    damaged = repo.run("printf 'x' | dd of=%s bs=1 seek=200 conv=notrunc", dump)
    assert damaged.rc == 0, damaged.stderr
    try:
        bad = repo.run("runuser -u pgdump -- wops-pgdump validate")
        assert bad.rc == 1 and "checksum mismatch" in bad.stdout, bad.stdout + bad.stderr
        refused = repo.run("runuser -u pgdump -- wops-pgdump restore %s --target-db x --create",
                           dump)
        assert refused.rc == 1 and "refusing to restore" in refused.stderr, refused.stderr
    finally:
        put_back = repo.run("cp -p /tmp/intact.dump %s", dump)
    assert put_back.rc == 0, put_back.stderr
    assert repo.run("runuser -u pgdump -- wops-pgdump validate").rc == 0


def test_in_place_restore_of_the_latest_state_keeps_archived_commits(
        hosts: dict[str, Any], warehouse: dict[str, int]) -> None:
    db = hosts[DB]
    _sql(db, "INSERT INTO dr.markers (label, drill_id) VALUES ('before-in-place', 'molecule')")
    pg_host.archive_current_wal(db)
    timeline = int(_sql(db, "SELECT timeline_id FROM pg_control_checkpoint()", db="postgres"))
    play = _playbook("dr_restore.yml", "-e", f"@{VAULT}", "-e", f"dr_restore_host={DB}",
                     "-e", "dr_restore_mode=in_place")
    assert play.returncode == 0, play.stdout[-4000:]
    # Play 6 ran pgBackRest's end-to-end archiving check against the restored
    # primary (on a host, not skipped).
    _, banner, rejoin = play.stdout.partition("PLAY [Restore 6/7")
    assert banner, play.stdout[-4000:]
    rejoin = rejoin.partition("PLAY [Restore 7/7")[0]
    checked = scenario.task_output(rejoin, "Check the configuration and WAL archiving end to end")
    assert re.search(r"^ok: \[", checked, re.M), checked or rejoin[-4000:]
    assert _sql(db, "SELECT pg_is_in_recovery()", db="postgres") == "f"
    assert _sql(db, "SELECT count(*) FROM dr.markers WHERE label = 'before-in-place'") == "1"
    assert int(_sql(db, "SELECT timeline_id FROM pg_control_checkpoint()", db="postgres")) \
        > timeline
    # The restored primary archives and backs up again.
    backup = _playbook("backup.yml", "-e", "backup_type=incr")
    assert backup.returncode == 0, backup.stdout[-3000:]
