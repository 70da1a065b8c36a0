"""airflow role: bad input fails in preflight, naming the variable.

The play runs in check mode on the controller itself: the preflight fails
first, and if it ever did not, check mode would still keep the machine
unchanged.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]

_GOOD_VARS = (
    "    airflow_fernet_key: 'zmJ3M0xH4Rw4r1kXy0KQxqVZs1Dd1hF8m3d9fJQk2aE='\n"
    "    airflow_api_secret_key: a\n    airflow_jwt_secret: b\n"
    "    airflow_admin_password: c\n    airflow_db_password: d\n"
    "    airflow_redis_password: e\n"
)


def _inventory(workers: bool) -> str:
    """A primary with pgBouncer, an Airflow host and, with ``workers``, a Celery worker."""
    worker_group = "    airflow_worker:\n      hosts:\n        w1:\n" if workers else ""
    return (controller.local_hosts(variables=f"    warehouse_etl_source_dir: {ROOT}\n{_GOOD_VARS}")
            + "  children:\n    postgres_primary:\n      hosts:\n        db1:\n"
            "    pgbouncer:\n      hosts:\n        db1:\n"
            "    airflow:\n      hosts:\n        af1:\n"
            f"{worker_group}")


def _run(tmp_path: Path, *extra: str, workers: bool = False) -> subprocess.CompletedProcess[str]:
    return controller.run(
        tmp_path, _inventory(workers),
        "- hosts: af1\n  gather_facts: false\n  roles:\n    - role: airflow\n",
        "--check", *extra)


# Each case: the variables it sets (-e k=v as strings, JSON as given), whether
# the inventory has Celery workers, and what the refusal must name.
_CASES: list[tuple[list[str], bool, str]] = [
    (["-e", "airflow_executor=KubernetesExecutor"], False, "airflow_executor"),
    (["-e", "airflow_executor=SequentialExecutor"], False, "airflow_executor"),
    # Celery without a broker: no broker host, or no broker password.
    (["-e", "airflow_executor=CeleryExecutor", "-e", "airflow_redis_host="], True,
     "airflow_redis_host"),
    (["-e", "airflow_redis_password="], True, "airflow_redis_password"),
    (["-e", "airflow_executor=CeleryExecutor"], False, "airflow_worker"),
    (["-e", "airflow_fernet_key="], False, "airflow_fernet_key"),
    (["-e", "airflow_fernet_key=not-a-fernet-key"], False,
     "airflow_fernet_key is not a Fernet key (32 url-safe base64 bytes, 44 characters)"),
    (["-e", "airflow_jwt_secret="], False, "airflow_jwt_secret"),
    (["-e", "airflow_version=3.0.0"], False, "airflow_version"),
    (["-e", "airflow_db_host=elsewhere"], False, "airflow_db_host"),
    (["-e", "airflow_pip_ca_bundle=certs/proxy-ca.pem"], False,
     "and airflow_pip_ca_bundle must be absolute paths on the host"),
    (["-e", "airflow_api_port=0"], False,
     "airflow_api_port is 0; set the TCP port the api-server listens on, 1 to 65535"),
    (["-e", "airflow_db_port=70000"], False,
     "airflow_db_port is 70000; set the port of airflow_db_host, 1 to 65535"),
    (["-e", "airflow_migrate_db_port=0"], False,
     "airflow_migrate_db_port is 0; set the port of airflow_migrate_db_host, 1 to 65535"),
    (["-e", "airflow_warehouse_db_port=0"], False,
     "airflow_warehouse_db_port is 0; set the port of airflow_warehouse_db_host, 1 to 65535"),
    (["-e", "airflow_redis_port=0"], True,
     "airflow_redis_port is 0; set the Redis broker's TCP port, 1 to 65535"),
    (["-e", "airflow_parallelism=0"], False,
     "airflow_parallelism is 0; set the task slots of the installation, at least 1"),
    (["-e", "airflow_celery_worker_concurrency=0"], True,
     "airflow_celery_worker_concurrency is 0; set the tasks one Celery worker runs at once, "
     "at least 1"),
    (["-e", "airflow_api_workers=0"], False,
     "airflow_api_workers is 0; set the api-server's worker processes, at least 1"),
    (["-e", "airflow_keep_releases=-1"], False,
     "airflow_keep_releases is -1; set the releases kept besides the current one, 0 or more"),
    (["-e", "airflow_dag_processor_refresh_interval=0"], False,
     "airflow_dag_processor_refresh_interval is 0; set the seconds between scans of the DAG "
     "folder, at least 1"),
    (["-e", "airflow_health_timeout=4"], False,
     "airflow_health_timeout is 4; set the seconds the play waits for healthy components, "
     "at least 5"),
    (["-e", "airflow_redis_maxmemory_mb=0"], True,
     "airflow_redis_maxmemory_mb is 0; set the broker's memory cap in MB, at least 1"),
    (["-e", "airflow_api_host=10.0.0.0/8"], False,
     "airflow_api_host is '10.0.0.0/8', which is not an address the api-server can listen on"),
    (["-e", "airflow_api_base_url=airflow.example.internal"], False,
     "airflow_api_base_url is 'airflow.example.internal'; write the URL users open the UI at "
     "with its scheme"),
    (["-e", "airflow_api_base_url=http://airflow.example.internal"], False,
     "airflow_api_base_url is 'http://airflow.example.internal', but the api-server serves HTTPS "
     "only (airflow_api_tls)"),
    (["-e", "airflow_pip_index_url=packages.example.internal/simple"], False,
     "airflow_pip_index_url is 'packages.example.internal/simple'; write the package index as an "
     "http://, https:// or file:// URL"),
    (["-e", "airflow_warehouse_db_host=elsewhere"], False,
     "airflow_warehouse_db_host is 'elsewhere', which is not a host of this inventory"),
    (["-e", '{"airflow_settings": {"parallelism": 8}}'], False,
     "airflow_settings has 'parallelism: 8', but its keys are airflow.cfg sections"),
    (["-e", '{"airflow_component_settings": {"webserver": {"api": {"workers": 2}}}}'], False,
     "airflow_component_settings has 'webserver: {'api': {'workers': 2}}'; its keys are the "
     "components api-server, scheduler, dag-processor, triggerer, celery-worker"),
    (["-e", '{"airflow_component_settings": {"scheduler": {"parsing_processes": 2}}}'], False,
     "airflow_component_settings has 'scheduler: {'parsing_processes': 2}'"),
]


@pytest.mark.parametrize("workers", [False, True])
def test_bad_input_fails_in_preflight(tmp_path: Path, workers: bool) -> None:
    """Every case of _CASES for this topology, each a host of one run, refused in preflight."""
    cases = {f"case{i}": (extra, named) for i, (extra, w, named) in enumerate(_CASES)
             if w == workers}
    results = controller.run_cases(
        tmp_path, _inventory(workers), "airflow",
        {name: controller.vars_of(extra) for name, (extra, _) in cases.items()},
        "- hosts: cases\n  gather_facts: false\n  roles:\n    - role: airflow\n", "--check")
    problems = controller.cases_refused(
        results, {name: (named,) for name, (_, named) in cases.items()},
        not_reached=("Install Airflow into the release's virtualenv",
                     "Install Python's venv support and packaging"))
    assert not problems, "\n".join(problems)


def test_good_input_passes_preflight(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--tags", "airflow_preflight")
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_good_celery_input_passes_preflight(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--tags", "airflow_preflight", workers=True)
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_plain_http_with_tls_off_passes_preflight(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--tags", "airflow_preflight", "-e", json.dumps({
        "airflow_api_tls": False, "airflow_api_base_url": "http://airflow.example.internal"}))
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_good_settings_pass_preflight(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--tags", "airflow_preflight", "-e", json.dumps({
        "airflow_api_host": "::", "airflow_api_base_url": "https://airflow.example.internal",
        "airflow_pip_index_url": "https://packages.example.internal/simple",
        "airflow_pip_ca_bundle": "/usr/local/share/ca-certificates/proxy.crt",
        "airflow_keep_releases": 0, "airflow_settings": {"core": {"parallelism": 8}},
        "airflow_component_settings": {"scheduler": {"scheduler": {"parsing_processes": 2}}},
    }))
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_every_problem_is_named_in_one_run(tmp_path: Path) -> None:
    """A port, a path and a settings section wrong at once: one run names all three."""
    proc = _run(tmp_path, "-e", "airflow_api_port=0", "-e", "airflow_home=airflow",
                "-e", '{"airflow_settings": {"parallelism": 8}}')
    controller.assert_refused(
        proc, "airflow_api_port is 0; set the TCP port the api-server listens on",
              "airflow_dags_folder, airflow_pip_wheelhouse and airflow_pip_ca_bundle must be "
              "absolute paths",
              "airflow_settings has 'parallelism: 8'",
        not_reached=("Install Airflow into the release's virtualenv",))
