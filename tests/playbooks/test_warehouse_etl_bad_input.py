"""warehouse_etl role: bad input fails in preflight, naming the variable, before any change.

The role's main.yml tags its preflight only `warehouse_etl` (no
warehouse_etl_preflight tag), and that tag also runs the install, which
builds the wheel on the controller. So the play runs the role's preflight
itself (tasks_from), in check mode, on the controller, and a marker task
after it shows whether the host got past it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PLAY = """\
- name: The warehouse_etl role's preflight
  hosts: probe
  tasks:
    - name: Run the preflight
      ansible.builtin.include_role:
        name: warehouse_etl
        tasks_from: preflight
    - name: Past the preflight
      ansible.builtin.debug:
        msg: PAST THE PREFLIGHT
"""


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "hosts.yml").write_text(
        "all:\n  vars:\n    wops_environment: dev\n    ansible_connection: local\n"
        f"    ansible_python_interpreter: {ROOT}/.venv/bin/python\n"
        f"    warehouse_etl_source_dir: {ROOT}\n"
        "    vault_postgresql_etl_password: not-a-real-secret\n"
        "  hosts:\n    probe:\n"
        "  children:\n    pgbouncer:\n      hosts:\n        db1:\n"
    )
    (tmp_path / "play.yml").write_text(PLAY)
    return subprocess.run(
        ["ansible-playbook", "--check", "-i", str(tmp_path / "hosts.yml"),
         str(tmp_path / "play.yml"), *extra],
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
    (["-e", "warehouse_etl_max_reject_ratio=1.5"], "warehouse_etl_max_reject_ratio",
     "must be within 0..1 (is 1.5)"),
    (["-e", "warehouse_etl_db_port=0"], "warehouse_etl_db_port is 0", "1 to 65535"),
    (["-e", "warehouse_etl_db_host=db9"], "warehouse_etl_db_host is 'db9'",
     "which is not a host of this inventory"),
    (["-e", "warehouse_etl_db_host=db1:6432"], "warehouse_etl_db_host is 'db1:6432'",
     "not an address, URL or host:port"),
    (["-e", "warehouse_etl_wheelhouse=wheels"], "warehouse_etl_wheelhouse is 'wheels'",
     "must be an absolute path"),
    (["-e", "warehouse_etl_pip_index_url=packages.example.internal/simple"],
     "warehouse_etl_pip_index_url is 'packages.example.internal/simple'",
     "write the package index as an http://, https:// or file:// URL"),
    (["-e", "warehouse_etl_pushgateway_url=ftp://pushgw:9091"],
     "warehouse_etl_pushgateway_url is 'ftp://pushgw:9091'", "write the Pushgateway as"),
    (_json(warehouse_etl_pushgateway_url="http://pushgw:9091 http://other:9091"),
     "warehouse_etl_pushgateway_url is 'http://pushgw:9091 http://other:9091'",
     "its metrics are lost"),
])
def test_bad_input_fails_in_preflight(
        tmp_path: Path, extra: list[str], named: str, fix: str) -> None:
    proc = _run(tmp_path, *extra)
    assert proc.returncode != 0
    out = _flat(proc.stdout)
    assert named in out, proc.stdout[-3000:]
    assert fix in out, proc.stdout[-3000:]
    assert "PAST THE PREFLIGHT" not in proc.stdout


@pytest.mark.parametrize("extra", [
    [],
    _json(warehouse_etl_pushgateway_url="http://pushgw.example.internal:9091",
          warehouse_etl_pip_index_url="https://packages.example.internal/simple",
          warehouse_etl_wheelhouse="/var/cache/wheels", warehouse_etl_db_port=5432),
    _json(warehouse_etl_pushgateway_url="pushgw:9091"),
])
def test_good_input_passes_preflight(tmp_path: Path, extra: list[str]) -> None:
    proc = _run(tmp_path, *extra)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "PAST THE PREFLIGHT" in proc.stdout
