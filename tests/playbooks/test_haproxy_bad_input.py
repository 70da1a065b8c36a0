"""haproxy role: bad input fails in preflight, naming every variable at once.

The role runs in check mode, preflight tags only, on local hosts: two
PostgreSQL hosts and a pgBouncer host. One run with every input wrong must
name each of them (the preflight's one assert collects them); the same
inventory with good input passes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from testbed import controller

HOSTS = ("  children:\n    postgres:\n      children:\n"
         "        postgres_primary:\n          hosts:\n            db1:\n"
         "        postgres_replica:\n          hosts:\n            db2:\n"
         "    pgbouncer:\n      hosts:\n        pool1:\n")
PLAY = "- name: Routing\n  hosts: pgbouncer\n  roles:\n    - role: haproxy\n"


def _run(tmp_path: Path, **values: object) -> subprocess.CompletedProcess[str]:
    return controller.run(tmp_path, controller.local_hosts() + HOSTS, PLAY,
                          "--check", "--tags", "haproxy_preflight",
                          *controller.extra_vars(**values))


def test_every_bad_input_is_named_in_one_run(tmp_path: Path) -> None:
    proc = _run(tmp_path, wops_postgresql_ha_mode="streaming", haproxy_members=["db1", "db9"],
                haproxy_primary_port=6432, haproxy_check_timeout_ms=2000,
                haproxy_check_fall=0, haproxy_idle_timeout=300, haproxy_replica_max_lag=-1)
    controller.assert_refused(
        proc,
        "wops_postgresql_ha_mode is 'streaming'; the haproxy role routes to the members Patroni",
        "haproxy_members names db9, not hosts of this inventory",
        "haproxy_primary_port (6432) and haproxy_replica_port (5001) must be two different TCP "
        "ports, 1 to 65535, and neither pgBouncer's (6432)",
        "haproxy_check_timeout_ms (2000) must be above 0 and below "
        "haproxy_check_interval_ms (1000)",
        "haproxy_check_fall (0) and haproxy_check_rise (2) must be 1 or more",
        "haproxy_idle_timeout (300 s) must be longer than pgbouncer_server_idle_timeout (600 s)",
        "haproxy_replica_max_lag (-1) must be 0 or more bytes",
        not_reached=("Install HAProxy",))


def test_good_input_passes_preflight(tmp_path: Path) -> None:
    proc = _run(tmp_path, wops_postgresql_ha_mode="patroni")
    assert proc.returncode == 0, proc.stdout[-3000:]
