"""airflow role: bad input fails in preflight, naming the variable.

The play runs in check mode on the controller itself: the preflight fails
first, and if it ever did not, check mode would still keep the machine
unchanged.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_GOOD_VARS = (
    "    airflow_fernet_key: 'zmJ3M0xH4Rw4r1kXy0KQxqVZs1Dd1hF8m3d9fJQk2aE='\n"
    "    airflow_api_secret_key: a\n    airflow_jwt_secret: b\n"
    "    airflow_admin_password: c\n    airflow_db_password: d\n"
    "    airflow_redis_password: e\n"
)


def _run(tmp_path: Path, *extra: str, workers: bool = False) -> subprocess.CompletedProcess[str]:
    worker_group = "    airflow_worker:\n      hosts:\n        w1:\n" if workers else ""
    (tmp_path / "hosts.yml").write_text(
        "all:\n  vars:\n    wops_environment: dev\n    ansible_connection: local\n"
        f"    ansible_python_interpreter: {ROOT}/.venv/bin/python\n"
        f"    warehouse_etl_source_dir: {ROOT}\n"
        f"{_GOOD_VARS}"
        "  children:\n    postgres_primary:\n      hosts:\n        db1:\n"
        "    pgbouncer:\n      hosts:\n        db1:\n"
        "    airflow:\n      hosts:\n        af1:\n"
        f"{worker_group}"
    )
    (tmp_path / "play.yml").write_text(
        "- hosts: af1\n  gather_facts: false\n  roles:\n    - role: airflow\n"
    )
    return subprocess.run(
        ["ansible-playbook", "--check", "-i", str(tmp_path / "hosts.yml"),
         str(tmp_path / "play.yml"), *extra],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
             "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"},
    )


@pytest.mark.parametrize(("extra", "workers", "named"), [
    (["-e", "airflow_executor=KubernetesExecutor"], False, "airflow_executor"),
    (["-e", "airflow_executor=SequentialExecutor"], False, "airflow_executor"),
    # Celery without a broker: no broker host, or no broker password.
    (["-e", "airflow_executor=CeleryExecutor", "-e", "airflow_redis_host="], True,
     "airflow_redis_host"),
    (["-e", "airflow_redis_password="], True, "airflow_redis_password"),
    (["-e", "airflow_executor=CeleryExecutor"], False, "airflow_worker"),
    (["-e", "airflow_fernet_key="], False, "airflow_fernet_key"),
    (["-e", "airflow_fernet_key=not-a-fernet-key"], False, "airflow_fernet_key"),
    (["-e", "airflow_jwt_secret="], False, "airflow_jwt_secret"),
    (["-e", "airflow_version=3.0.0"], False, "airflow_version"),
    (["-e", "airflow_db_host=elsewhere"], False, "airflow_db_host"),
])
def test_bad_input_fails_in_preflight(
        tmp_path: Path, extra: list[str], workers: bool, named: str) -> None:
    proc = _run(tmp_path, *extra, workers=workers)
    assert proc.returncode != 0
    assert named in proc.stdout, proc.stdout[-2000:]
    # Failed before the first install task.
    assert "Install Airflow into the release's virtualenv" not in proc.stdout
    assert "Install Python's venv support and packaging" not in proc.stdout


def test_good_input_passes_preflight(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--tags", "airflow_preflight")
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_good_celery_input_passes_preflight(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--tags", "airflow_preflight", workers=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
