"""pgbouncer role: bad input fails before anything changes, naming the variable.

The play runs in check mode on a local host: the preflight fails first, and if
it ever did not, check mode would still keep the controller unchanged.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "hosts.yml").write_text(
        "all:\n  vars:\n    wops_environment: dev\n    ansible_connection: local\n"
        # Debian's Python, which the postgres user can run (the preflight's
        # read of the server's roles then finds no server here and goes on).
        "    ansible_python_interpreter: /usr/bin/python3\n"
        # The controller has no sudo; root becomes postgres with su.
        "    ansible_become_method: su\n"
        "    pgbouncer_admin_password: x\n    pgbouncer_stats_password: y\n"
        "  children:\n    postgres_primary:\n      hosts:\n        db1:\n"
        "    pgbouncer:\n      hosts:\n        db1:\n"
    )
    (tmp_path / "play.yml").write_text(
        "- hosts: pgbouncer\n  roles:\n    - role: pgbouncer\n"
    )
    return subprocess.run(
        ["ansible-playbook", "--check", "-i", str(tmp_path / "hosts.yml"),
         str(tmp_path / "play.yml"), *extra],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
             "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"},
    )


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
