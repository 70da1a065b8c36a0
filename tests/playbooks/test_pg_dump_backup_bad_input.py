"""pg_dump_backup role: bad input fails in preflight, naming the variable, before any change.

The role runs in check mode, preflight tags only, on a local backup host whose
primary is in the inventory but not in the play. Its systemd judges the
schedule. If a check ever let bad input through, check mode and the tag
filter would still keep the controller unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "hosts.yml").write_text(
        "all:\n  vars:\n    wops_environment: dev\n    ansible_connection: local\n"
        f"    ansible_python_interpreter: {ROOT}/.venv/bin/python\n"
        "    vault_postgresql_backup_password: not-a-real-secret\n"
        # No project CA on the controller: the CA check has its own sslmode.
        "    pg_dump_backup_sslmode: require\n"
        "  children:\n    postgres_primary:\n      hosts:\n        db1:\n"
        "    backup:\n      hosts:\n        bk1:\n"
    )
    (tmp_path / "play.yml").write_text(
        "- name: Logical backups\n  hosts: backup\n  roles:\n    - role: pg_dump_backup\n"
    )
    return subprocess.run(
        ["ansible-playbook", "--check", "--tags", "pg_dump_backup_preflight",
         "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"), *extra],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
             "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"},
    )


def _json(**extra_vars: object) -> list[str]:
    return ["-e", json.dumps(extra_vars)]


def _flat(text: str) -> str:
    """The output with the YAML callback's line folds and doubled quotes undone."""
    return " ".join(text.split()).replace("''", "'")


@pytest.mark.parametrize(("extra", "named", "fix"), [
    (["-e", "pg_dump_backup_host=db9"], "pg_dump_backup_host ('db9')",
     "must be an inventory host"),
    (["-e", "pg_dump_backup_retention_daily=0"], "pg_dump_backup_retention_daily",
     "be at least 1"),
    (["-e", "pg_dump_backup_port=0"], "pg_dump_backup_port is 0", "1 to 65535"),
    (["-e", "pg_dump_backup_compress=10"], "pg_dump_backup_compress is 10",
     "from 0 (none) to 9"),
    (["-e", "pg_dump_backup_retention_monthly=-1"], "pg_dump_backup_retention_monthly is -1",
     "0 (no monthly archives) or more"),
    (["-e", "pg_dump_backup_directory=warehouse-dumps"],
     "pg_dump_backup_directory is 'warehouse-dumps'", "must be an absolute path"),
    (_json(pg_dump_backup_schedule="daily at 00:30"),
     "pg_dump_backup_schedule is 'daily at 00:30'", "systemd-analyze calendar"),
    # No schedule: the timer would never fire.
    (_json(pg_dump_backup_schedule=""), "pg_dump_backup_schedule is",
     "does not accept as an OnCalendar expression"),
])
def test_bad_input_fails_in_preflight(
        tmp_path: Path, extra: list[str], named: str, fix: str) -> None:
    proc = _run(tmp_path, *extra)
    assert proc.returncode != 0
    out = _flat(proc.stdout)
    assert named in out, proc.stdout[-3000:]
    assert fix in out, proc.stdout[-3000:]
    # Failed before the first install task.
    assert "Install the PostgreSQL client binaries" not in proc.stdout
    assert "Install the dump tool" not in proc.stdout


@pytest.mark.parametrize("extra", [
    [],
    _json(pg_dump_backup_schedule="Mon..Fri *-*-* 23:15:00", pg_dump_backup_retention_monthly=0),
    # A timer that does not run needs no schedule.
    _json(pg_dump_backup_timer_enabled=False, pg_dump_backup_schedule=""),
])
def test_good_input_passes_preflight(tmp_path: Path, extra: list[str]) -> None:
    proc = _run(tmp_path, *extra)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "changed=0" in proc.stdout
