"""warehouse_etl role: bad input fails in preflight, naming the variable, before any change.

The role's main.yml tags its preflight only `warehouse_etl` (no
warehouse_etl_preflight tag), and that tag also runs the install, which
builds the wheel on the controller. So the play runs the role's preflight
itself (tasks_from), in check mode, on the controller, and a marker task
after it shows whether the host got past it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]
_json = controller.extra_vars

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
    return controller.run(
        tmp_path,
        controller.local_hosts(variables=(
            f"    warehouse_etl_source_dir: {ROOT}\n"
            "    vault_postgresql_etl_password: not-a-real-secret\n"))
        + "  hosts:\n    probe:\n"
        "  children:\n    pgbouncer:\n      hosts:\n        db1:\n",
        PLAY, "--check", *extra)


# Each case: its -e arguments, what the refusal names and the fix it gives.
_CASES: list[tuple[list[str], str, str]] = [
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
]


def test_bad_input_fails_in_preflight(tmp_path: Path) -> None:
    """Every case of _CASES a host of one run, each refused by the preflight."""
    cases = {f"case{i}": (extra, texts) for i, (extra, *texts) in enumerate(_CASES)}
    results = controller.run_cases(
        tmp_path,
        controller.local_hosts(variables=(
            f"    warehouse_etl_source_dir: {ROOT}\n"
            "    vault_postgresql_etl_password: not-a-real-secret\n"))
        + "  children:\n    pgbouncer:\n      hosts:\n        db1:\n",
        "probes", {name: controller.vars_of(extra) for name, (extra, _) in cases.items()},
        PLAY.replace("hosts: probe", "hosts: cases"), "--check")
    problems = controller.cases_refused(
        results, {name: tuple(texts) for name, (_, texts) in cases.items()},
        not_reached=("Past the preflight",))
    assert not problems, "\n".join(problems)


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


def test_every_problem_is_named_in_one_run(tmp_path: Path) -> None:
    """A port, a host and a URL wrong at once: one run names all three."""
    proc = _run(tmp_path, "-e", "warehouse_etl_db_port=0", "-e", "warehouse_etl_db_host=db9",
                "-e", "warehouse_etl_pip_index_url=packages.example.internal/simple")
    controller.assert_refused(
        proc, "warehouse_etl_db_port is 0", "warehouse_etl_db_host is 'db9'",
              "warehouse_etl_pip_index_url is 'packages.example.internal/simple'",
        not_reached=("PAST THE PREFLIGHT",))
