"""pgbouncer role: bad input fails before anything changes, naming the variable.

The play runs in check mode on a local host: the preflight fails first, and if
it ever did not, check mode would still keep the controller unchanged.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return controller.run(
        tmp_path,
        # Debian's Python, which the postgres user can run (the preflight's
        # read of the server's roles then finds no server here and goes on).
        controller.local_hosts(
            python="/usr/bin/python3", become_su=True,
            variables="    pgbouncer_admin_password: x\n    pgbouncer_stats_password: y\n")
        + "  children:\n    postgres_primary:\n      hosts:\n        db1:\n"
        "    pgbouncer:\n      hosts:\n        db1:\n",
        "- hosts: pgbouncer\n  roles:\n    - role: pgbouncer\n",
        "--check", *extra)


@pytest.mark.parametrize(("extra", "named"), [
    (["-e", "pgbouncer_pool_mode=sometimes"], "pgbouncer_pool_mode"),
    (["-e", '{"pgbouncer_databases": [{"name": "warehouse", "host": "db9"}]}'],
     "pgbouncer_databases[0]"),
    (["-e", '{"pgbouncer_databases": [{"name": "w", "host": "db1", "pool_mode": "x"}]}'],
     "pgbouncer_databases[0]"),
    (["-e", "pgbouncer_auth_file=/tmp/userlist.txt"], "pgbouncer_auth_file"),
    (["-e", "pgbouncer_auth_file=/etc/pgbouncer/../shadow"], "pgbouncer_auth_file"),
    (["-e", "pgbouncer_admin_password="], "pgbouncer_admin_password"),
    (["-e", "pgbouncer_postgresql_host=elsewhere"], "pgbouncer_postgresql_host"),
    (["-e", "pgbouncer_stats_user=postgres"],
     "pgbouncer_stats_user is 'postgres', a PostgreSQL role the stack already uses"),
    (["-e", '{"postgresql_users": [{"name": "admin", "password_var": "v"}], '
            '"pgbouncer_admin_user": "admin"}'],
     "pgbouncer_admin_user is 'admin', a PostgreSQL role the stack already uses"),
    (["-e", "pgbouncer_stats_user=pgbouncer_admin"],
     "which another of pgBouncer's users also has"),
    (["-e", '{"pgbouncer_client_networks": ["samenet"]}'],
     "pgbouncer_client_networks has 'samenet'"),
    (["-e", '{"pgbouncer_admin_networks": ["10.0.0.5"]}'],
     "pgbouncer_admin_networks has '10.0.0.5'"),
])
def test_bad_input_fails_in_preflight(tmp_path: Path, extra: list[str], named: str) -> None:
    proc = _run(tmp_path, *extra)
    assert proc.returncode != 0
    assert named in proc.stdout, proc.stdout[-2000:]
    # Failed before the first install task.
    assert "Install pgBouncer and the PostgreSQL client" not in proc.stdout


def test_good_input_passes_preflight(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--tags", "pgbouncer_preflight")
    assert proc.returncode == 0, proc.stdout[-2000:]
