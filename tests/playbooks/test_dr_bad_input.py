"""DR playbooks: a bad request is refused in the first play, before any host is touched.

playbooks/dr_restore.yml and playbooks/dr_drill.yml run against local hosts
(a primary, a repository host, a scratch host). Every case here must fail on
the controller, before the restore horizon tool or pgBackRest is asked
anything, with the message that names what to fix; no later play starts.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]

HOSTS = (controller.local_hosts()
         + "  children:\n    postgres:\n      children:\n"
         "        postgres_primary:\n          hosts:\n            db1:\n"
         "    backup:\n      hosts:\n        bk1:\n"
         "    dr_scratch:\n      hosts:\n        sc1:\n")


def _run(tmp_path: Path, playbook: str, *extra: str) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(HOSTS)
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / playbook), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, check=False,
        env=controller.env())


def _request(host: str, mode: str, kind: str) -> str:
    return (f"Restore request: host '{host}' (must be an inventory host), mode '{mode}' (new_host, "
            f"or in_place on the current primary db1), target type '{kind}' (latest, time, name, "
            "lsn, immediate; all but latest and immediate need dr_restore_target). "
            "Nothing was changed.")


_RESTORE = [
    ([], _request("", "new_host", "latest")),
    (["-e", "dr_restore_host=sc1", "-e", "dr_restore_mode=sideways"],
     _request("sc1", "sideways", "latest")),
    (["-e", "dr_restore_host=sc1", "-e", "dr_restore_target_type=time"],
     _request("sc1", "new_host", "time")),
    (["-e", "dr_restore_host=sc1", "-e", "dr_restore_mode=in_place"],
     _request("sc1", "in_place", "latest")),
    (["-e", "dr_restore_host=db1"], _request("db1", "new_host", "latest")),
]


def _unsafe(scratch: str, port: int, data_dir: str) -> str:
    return (f"The drill restores onto {scratch}:{port} in {data_dir} and reads db1. The scratch "
            "host must be neither the primary nor the repository host (put one in the dr_scratch "
            "group, or pass -e dr_drill_host=...), and the data directory not a cluster's "
            "(/var/lib/postgresql/<version>/...): set dr_drill_data_dir to a directory of its own.")


_DEFAULT_DIR = "/var/lib/postgresql/dr-drill/warehouse"


_DRILL = [
    (["-e", "dr_drill_host=db1"], _unsafe("db1", 5433, _DEFAULT_DIR)),
    (["-e", "dr_drill_host=bk1"], _unsafe("bk1", 5433, _DEFAULT_DIR)),
    (["-e", "dr_drill_port=80"], _unsafe("sc1", 80, _DEFAULT_DIR)),
    (["-e", "dr_drill_data_dir=/var/lib/postgresql/16/main"],
     _unsafe("sc1", 5433, "/var/lib/postgresql/16/main")),
    (["-e", "dr_drill_target_time=2026-11-26T03:07:05.080121+00:00"],
     "dr_drill_target_time is set: pass dr_drill_source_checksums too (the 'tables' of a "
     "pg_table_checksums run on the source at that time, consistent_point: true), or drop "
     "dr_drill_target_time and let the drill mark its own target."),
]
# What each playbook would do next, had it let the request through.
_NEXT = {"dr_restore.yml": ("Ask the repository", "PLAY [Restore 2/7"),
         "dr_drill.yml": ("Read the repository's backups", "PLAY [Drill 2/7")}


@pytest.mark.parametrize(("playbook", "extra", "message"),
                         [("dr_restore.yml", *case) for case in _RESTORE]
                         + [("dr_drill.yml", *case) for case in _DRILL])
def test_a_bad_request_is_refused_before_the_repository_is_read(
        tmp_path: Path, playbook: str, extra: list[str], message: str) -> None:
    # Restores: a bad host, mode or target; drills: an unsafe scratch host, port or directory.
    proc = _run(tmp_path, playbook, *extra)
    out = controller.flat(proc.stdout)
    assert proc.returncode != 0
    assert message in out, proc.stdout[-3000:]
    for step in _NEXT[playbook]:
        assert step not in proc.stdout
    assert not re.search(r"\bchanged=[1-9]", proc.stdout)
