"""pgbouncer role: bad input fails before anything changes, naming the variable.

The play runs in check mode on a local host: the preflight fails first, and if
it ever did not, check mode would still keep the controller unchanged.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *extra: str, pgbouncers: str = "        db1:\n",
         children: str = "") -> subprocess.CompletedProcess[str]:
    """The role in check mode on the pgbouncer group of a local inventory.

    db1 is the primary, with the postgresql role's defaults (max_connections
    100, 3 reserved for superusers: 97 for pgBouncer). The role's database
    entries all point at it (no replica): 2 users x (10 + 5) for warehouse,
    as much for warehouse_ro, 1 x 15 for airflow = 75 server connections with
    the pool size of 10 set here (the role's 25 would make 150).
    ``pgbouncers`` lists the pgbouncer group's hosts (8-space indent),
    ``children`` adds groups (4-space indent).
    """
    return controller.run(
        tmp_path,
        # Debian's Python, which the postgres user can run (the preflight's
        # read of the server's roles then finds no server here and goes on).
        controller.local_hosts(
            python="/usr/bin/python3", become_su=True,
            variables="    pgbouncer_admin_password: x\n    pgbouncer_stats_password: y\n"
            "    pgbouncer_default_pool_size: 10\n")
        + "  children:\n    postgres_primary:\n      hosts:\n        db1:\n"
        "    pgbouncer:\n      hosts:\n" + pgbouncers + children,
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
    (["-e", "pgbouncer_auth_mode=auth_query", "-e", "pgbouncer_auth_password=z",
      "-e", "pgbouncer_auth_user=etl", "-e", "pgbouncer_max_db_connections=10"],
     "pgbouncer_auth_user is 'etl', a PostgreSQL role the stack already uses"),
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


def test_every_problem_is_named_in_one_run(tmp_path: Path) -> None:
    """An entry without a name beside a good one, a bad network and a bad auth_file: all named."""
    proc = _run(tmp_path, "-e", json.dumps({
        "pgbouncer_databases": [{"name": "warehouse", "host": "db1"}, {"host": "db1"}],
        "pgbouncer_client_networks": ["samenet"],
        "pgbouncer_auth_file": "/tmp/userlist.txt"}))
    controller.assert_refused(
        proc, "pgbouncer_databases[1] (no name) is invalid",
              "pgbouncer_client_networks has 'samenet'",
              "pgbouncer_auth_file is /tmp/userlist.txt",
        not_reached=("Install pgBouncer and the PostgreSQL client",))


def test_good_input_passes_preflight(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--tags", "pgbouncer_preflight")
    assert proc.returncode == 0, proc.stdout[-2000:]


# The fix every refusal names, besides the variables and the numbers.
FIX = ("lower the pool sizes (pool_size of the pgbouncer_databases entries, "
       "pgbouncer_default_pool_size, pgbouncer_reserve_pool_size) or set max_db_connections "
       "(on the entries, or pgbouncer_max_db_connections), or raise")


@pytest.mark.parametrize(("extra", "named"), [
    # The default pool size, over the three databases on db1.
    (["-e", "pgbouncer_default_pool_size=20"],
     "db1: pgbouncer_databases 'warehouse' 2 users (etl, reporting) x "
     "(pgbouncer_default_pool_size 20 + pgbouncer_reserve_pool_size 5) = 50 + "
     "db1: pgbouncer_databases 'airflow' 1 user (airflow) x "
     "(pgbouncer_default_pool_size 20 + pgbouncer_reserve_pool_size 5) = 25 + "
     "db1: pgbouncer_databases 'warehouse_ro' 2 users (etl, reporting) x "
     "(pgbouncer_default_pool_size 20 + pgbouncer_reserve_pool_size 5) = 50 = 125 server "
     "connections on db1, whose postgresql_max_connections is 100 (minus 3 "
     "superuser_reserved_connections: 97 for pgBouncer)"),
    # One large per-database pool.
    (["-e", '{"pgbouncer_databases": [{"name": "warehouse", "host": "db1"}, '
            '{"name": "bench", "dbname": "warehouse", "host": "db1", "pool_size": 40}]}'],
     "db1: pgbouncer_databases 'bench' 2 users (etl, reporting) x "
     "(pool_size 40 + pgbouncer_reserve_pool_size 5) = 90 = 120 server connections on db1"),
    # The server's own setting wins over postgresql_max_connections; the headroom counts.
    (["-e", '{"postgresql_max_connections": 500, "postgresql_settings": {"max_connections": 80},'
            ' "pgbouncer_server_headroom": 5}'],
     "= 75 server connections on db1, whose postgresql_settings.max_connections is 80 (minus 3 "
     "superuser_reserved_connections, 5 pgbouncer_server_headroom: 72 for pgBouncer)"),
    # auth_query: any login role of the server may come through pgBouncer.
    (["-e", "pgbouncer_auth_mode=auth_query", "-e", "pgbouncer_auth_password=z"],
     "db1: pgbouncer_databases 'airflow' 3 users (airflow, monitoring, admin) x "
     "(pgbouncer_default_pool_size 10 + pgbouncer_reserve_pool_size 5) = 45"),
])
def test_pools_over_max_connections_fail_in_preflight(
        tmp_path: Path, extra: list[str], named: str) -> None:
    proc = _run(tmp_path, *extra, "--tags", "pgbouncer_preflight")
    out = controller.flat(proc.stdout)
    assert proc.returncode != 0
    assert named in out, out[-2000:]
    assert FIX in out, out[-2000:]


@pytest.mark.parametrize("limit", [[], ["--limit", "db1"]])
def test_two_pgbouncers_in_front_of_one_primary_count_together(
        tmp_path: Path, limit: list[str]) -> None:
    # Each alone fits (75 of 97); together they do not. pgb2 sets its own pool
    # size, which counts also when --limit leaves it out of the run.
    pgbouncers = "        db1:\n        pgb2:\n          pgbouncer_default_pool_size: 12\n"
    proc = _run(tmp_path, "--tags", "pgbouncer_preflight", *limit, pgbouncers=pgbouncers)
    out = controller.flat(proc.stdout)
    assert proc.returncode != 0
    assert ("pgb2: pgbouncer_databases 'warehouse_ro' 2 users (etl, reporting) x "
            "(pgbouncer_default_pool_size 12 + pgbouncer_reserve_pool_size 5) = 34 = 160 server "
            "connections on db1, whose postgresql_max_connections is 100") in out, out[-2000:]
    assert "db1: pgbouncer_databases 'warehouse' 2 users (etl, reporting) x" in out
    assert FIX + " postgresql_max_connections on db1." in out


@pytest.mark.parametrize(("extra", "checked"), [
    # max_db_connections bounds each database at 30: 30 + 25 + 30 = 85 of 97
    # (125 without it).
    (["-e", "pgbouncer_default_pool_size=20", "-e", "pgbouncer_max_db_connections=30"], True),
    # ... or on one entry: 2 x (40 + 5) capped at 20, plus warehouse's 30.
    (["-e", '{"pgbouncer_databases": [{"name": "warehouse", "host": "db1"}, '
            '{"name": "bench", "dbname": "warehouse", "host": "db1", "pool_size": 40, '
            '"max_db_connections": 20}]}'], True),
    # A database on a server that is not a PostgreSQL host of the inventory is not checked.
    (["-e", '{"pgbouncer_databases": [{"name": "warehouse", "host": "ext1", "pool_size": 500}]}'],
     False),
])
def test_pools_within_max_connections_pass(
        tmp_path: Path, extra: list[str], checked: bool) -> None:
    proc = _run(tmp_path, *extra, "--tags", "pgbouncer_preflight",
                children="    external:\n      hosts:\n        ext1:\n")
    assert proc.returncode == 0, proc.stdout[-2000:]
    task = proc.stdout.split("pools fit in each PostgreSQL host's max_connections]")[1]
    assert ("ok: [db1] => (item=db1)" in task.split("TASK [")[0]) is checked
