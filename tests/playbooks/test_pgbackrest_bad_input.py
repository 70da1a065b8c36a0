"""pgbackrest role: bad input fails in preflight, naming the variable, before any change.

The role runs in check mode, preflight tags only, on a local repository host
(the backup group) whose primary is in the inventory but not in the play, so
no PostgreSQL server is read. Its systemd judges the schedules. If a check
ever let bad input through, check mode and the tag filter would still keep
the controller unchanged.
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
        controller.local_hosts(
            become_su=True, variables="    pgbackrest_cipher_pass: not-a-real-passphrase-0123\n")
        + "  children:\n    postgres_primary:\n      hosts:\n        db1:\n"
        "    backup:\n      hosts:\n        bk1:\n",
        "- name: pgBackRest\n  hosts: backup\n  roles:\n    - role: pgbackrest\n",
        "--check", "--tags", "pgbackrest_preflight", *extra)


_S3 = {"pgbackrest_repo_type": "s3", "pgbackrest_repo_s3_bucket": "backups",
       "pgbackrest_repo_s3_region": "eu-west-1", "pgbackrest_repo_s3_key": "not-a-key",
       "pgbackrest_repo_s3_key_secret": "not-a-secret"}


# Each case: its -e arguments, what the refusal names and the fix it gives.
_CASES: list[tuple[list[str], str, str]] = [
    (["-e", "pgbackrest_pg_port=70000"], "pgbackrest_pg_port is 70000", "1 to 65535"),
    (["-e", "pgbackrest_archive_timeout=0"], "pgbackrest_archive_timeout is 0", "at least 1"),
    (["-e", "pgbackrest_archive_check_timeout=0"], "pgbackrest_archive_check_timeout is 0",
     "at least 1"),
    (["-e", "pgbackrest_process_max=0"], "pgbackrest_process_max is 0", "1 to 999"),
    (["-e", "pgbackrest_retention_full=0"], "pgbackrest_retention_full is 0",
     "keep at least 1 full backup"),
    (_json(pgbackrest_retention_full=0, pgbackrest_retention_full_type="time"),
     "pgbackrest_retention_full is 0", "(days, pgbackrest_retention_full_type is time)"),
    (["-e", "pgbackrest_retention_diff=0"], "pgbackrest_retention_diff is 0",
     "keep at least 1 differential backup"),
    (["-e", "pgbackrest_schedule_randomized_delay=-1"],
     "pgbackrest_schedule_randomized_delay is -1", "0 or more"),
    (["-e", "pgbackrest_repo_path=var/lib/pgbackrest"],
     "pgbackrest_repo_path is 'var/lib/pgbackrest'", "must be an absolute path"),
    (_json(pgbackrest_archive_async=True, pgbackrest_spool_path="spool"),
     "pgbackrest_spool_path is 'spool'", "must be an absolute path"),
    (_json(pgbackrest_pg_hosts=["db9"]), "pgbackrest_pg_hosts names 'db9'",
     "which is not a host of this inventory"),
    (_json(pgbackrest_restore_hosts=["scratch9"]), "pgbackrest_restore_hosts names 'scratch9'",
     "which is not a host of this inventory"),
    (_json(pgbackrest_backup_standby=True), "pgbackrest_backup_standby is true",
     "lists no standby after the primary"),
    (_json(pgbackrest_schedule={"full": "Sun *-*-* 01:00:00", "daily": "*-*-* 01:00:00"}),
     "pgbackrest_schedule has the key(s) daily", "the backup types full, diff and incr"),
    (_json(pgbackrest_schedule={"full": "Sundy 01:00", "diff": "", "incr": ""}),
     "pgbackrest_schedule.full is 'Sundy 01:00'", "systemd-analyze calendar"),
    (_json(pgbackrest_repo_options={"repo1-storage-verify-tls": "n"}),
     "pgbackrest_repo_options has the key 'repo1-storage-verify-tls'",
     "name it 'storage-verify-tls'"),
    (_json(pgbackrest_global_options={"repo1-cipher-pass": "not-a-secret"}),
     "pgbackrest_global_options has the key 'repo1-cipher-pass', a secret",
     "vault_pgbackrest_cipher_pass"),
    (_json(**_S3, pgbackrest_repo_s3_endpoint="https://s3.eu-west-1.amazonaws.com"),
     "pgbackrest_repo_s3_endpoint is 'https://s3.eu-west-1.amazonaws.com'", "without https://"),
]


def test_bad_input_fails_in_preflight(tmp_path: Path) -> None:
    """Every case of _CASES a repository host of one run, each refused before the install."""
    cases = {f"case{i}": (extra, texts) for i, (extra, *texts) in enumerate(_CASES)}
    results = controller.run_cases(
        tmp_path,
        controller.local_hosts(
            become_su=True, variables="    pgbackrest_cipher_pass: not-a-real-passphrase-0123\n")
        + "  children:\n    postgres_primary:\n      hosts:\n        db1:\n",
        # Each case is its own repository host.
        "backup", {name: {"pgbackrest_repo_host": name, **controller.vars_of(extra)}
                   for name, (extra, _) in cases.items()},
        "- name: pgBackRest\n  hosts: cases\n  roles:\n    - role: pgbackrest\n",
        "--check", "--tags", "pgbackrest_preflight")
    problems = controller.cases_refused(
        results, {name: tuple(texts) for name, (_, texts) in cases.items()},
        not_reached=("Install pgBackRest",))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("extra", [
    [],
    # An empty schedule disables its timer.
    _json(pgbackrest_schedule={"full": "Sun *-*-* 01:00:00", "diff": "Mon..Sat *-*-* 01:00:00",
                               "incr": ""}, pgbackrest_archive_async=True),
    _json(**_S3, pgbackrest_repo_s3_endpoint="s3.eu-west-1.amazonaws.com"),
])
def test_good_input_passes_preflight(tmp_path: Path, extra: list[str]) -> None:
    proc = _run(tmp_path, *extra)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "changed=0" in proc.stdout


def test_every_problem_is_named_in_one_run(tmp_path: Path) -> None:
    """Mistakes in three variables and a list: one run names each of them."""
    proc = _run(tmp_path, *_json(pgbackrest_pg_port=70000, pgbackrest_process_max=0,
                                 pgbackrest_repo_path="var/lib/pgbackrest",
                                 pgbackrest_repo_options={"repo1-a": "x", "repo2-b": "y"}))
    controller.assert_refused(
        proc, "pgbackrest_pg_port is 70000", "pgbackrest_process_max is 0",
              "pgbackrest_repo_path is 'var/lib/pgbackrest'",
              "pgbackrest_repo_options has the key 'repo1-a'",
              "pgbackrest_repo_options has the key 'repo2-b'",
        not_reached=("Install pgBackRest",))
