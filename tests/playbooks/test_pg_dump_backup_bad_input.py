"""pg_dump_backup role: bad input fails in preflight, naming the variable, before any change.

The role runs in check mode, preflight tags only, on a local backup host whose
primary is in the inventory but not in the play. Its systemd judges the
schedule. If a check ever let bad input through, check mode and the tag
filter would still keep the controller unchanged.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]
_json = controller.extra_vars


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return controller.run(
        tmp_path,
        controller.local_hosts(variables=(
            "    vault_postgresql_backup_password: not-a-real-secret\n"
            # No project CA on the controller: the CA check has its own sslmode.
            "    pg_dump_backup_sslmode: require\n"))
        + "  children:\n    postgres_primary:\n      hosts:\n        db1:\n"
        "    backup:\n      hosts:\n        bk1:\n",
        "- name: Logical backups\n  hosts: backup\n  roles:\n    - role: pg_dump_backup\n",
        "--check", "--tags", "pg_dump_backup_preflight", *extra)


# Each case: its -e arguments, what the refusal names and the fix it gives.
_CASES: list[tuple[list[str], str, str]] = [
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
]


def test_bad_input_fails_in_preflight(tmp_path: Path) -> None:
    """Every case of _CASES a backup host of one run, each refused before the first install."""
    cases = {f"case{i}": (extra, texts) for i, (extra, *texts) in enumerate(_CASES)}
    results = controller.run_cases(
        tmp_path,
        controller.local_hosts(variables=(
            "    vault_postgresql_backup_password: not-a-real-secret\n"
            "    pg_dump_backup_sslmode: require\n"))
        + "  children:\n    postgres_primary:\n      hosts:\n        db1:\n",
        "backup", {name: controller.vars_of(extra) for name, (extra, _) in cases.items()},
        "- name: Logical backups\n  hosts: cases\n  roles:\n    - role: pg_dump_backup\n",
        "--check", "--tags", "pg_dump_backup_preflight")
    problems = controller.cases_refused(
        results, {name: tuple(texts) for name, (_, texts) in cases.items()},
        not_reached=("Install the PostgreSQL client binaries", "Install the dump tool"))
    assert not problems, "\n".join(problems)


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


def test_every_problem_is_named_in_one_run(tmp_path: Path) -> None:
    """A compression level, a directory and a schedule wrong at once: one run names all three."""
    proc = _run(tmp_path, "-e", "pg_dump_backup_compress=10",
                "-e", "pg_dump_backup_directory=dumps", "-e", "pg_dump_backup_schedule=Sundy")
    controller.assert_refused(
        proc, "pg_dump_backup_compress is 10", "pg_dump_backup_directory is 'dumps'",
              "pg_dump_backup_schedule is 'Sundy'",
        not_reached=("Install the dump tool",))
