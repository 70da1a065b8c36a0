"""CeleryExecutor: the tasks of a DAG run execute on the worker hosts."""

from __future__ import annotations

import json
from typing import Any

from testbed import airflow_checks

SCHED = "wops-mol-celery-sched"
WORKERS = {"wops-mol-celery-w1", "wops-mol-celery-w2"}


def _curl(host: Any, method: str, path: str, token: str = "",
          body: dict[str, Any] | None = None) -> tuple[int, Any]:
    return airflow_checks.api(host, method, path, token, body)


def test_scheduler_host_runs_no_worker_and_workers_run_only_workers(
        hosts: dict[str, Any]) -> None:
    sched = hosts[SCHED]
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        assert sched.service(f"airflow-{component}").is_running
    assert not sched.file("/etc/systemd/system/airflow-celery-worker.service").exists
    assert "executor = CeleryExecutor" in sched.file("/etc/airflow/airflow.cfg").content_string
    for name in WORKERS:
        assert hosts[name].service("airflow-celery-worker").is_running
        assert not hosts[name].file("/etc/systemd/system/airflow-scheduler.service").exists


def test_broker_needs_its_password_and_listens_privately(
        hosts: dict[str, Any], secrets: dict[str, str]) -> None:
    sched = hosts[SCHED]
    listening = sched.check_output("ss -Hltn 'sport = :6379'")
    assert "0.0.0.0:6379" not in listening and "*:6379" not in listening
    assert "127.0.0.1:6379" in listening
    denied = sched.run("redis-cli -h 127.0.0.1 ping")
    assert "NOAUTH" in denied.stdout + denied.stderr
    ok = sched.run("REDISCLI_AUTH=%s redis-cli -h 127.0.0.1 ping",
                   secrets["vault_redis_password"])
    assert ok.rc == 0 and ok.stdout.strip() == "PONG", ok.stdout + ok.stderr


def test_workers_reach_the_execution_api_over_tls_checked_with_the_project_ca(
        hosts: dict[str, Any]) -> None:
    for name in WORKERS:
        worker = hosts[name]
        cfg = worker.file("/etc/airflow/airflow.cfg").content_string
        assert f"execution_api_server_url = https://{SCHED}:8080/execution/" in cfg, name
        assert "ssl_ca_file = /etc/airflow/ca.crt" in cfg and "ssl_cert =" not in cfg, name
        # No api-server here: no key or certificate of its own.
        assert not worker.file("/etc/airflow/tls").exists, name
        result = airflow_checks.execution_api_health(worker)
        assert result.rc == 0, (name, result.stderr[-2000:])
        reply = json.loads(result.stdout.strip().splitlines()[-1])
        assert reply == {"url": f"https://{SCHED}:8080/execution/",
                         "health": {"status": "healthy"}}, name
        # The same client with public CAs only refuses the api-server.
        refused = airflow_checks.execution_api_health(
            worker, AIRFLOW__API__SSL_CA_FILE="/etc/ssl/certs/ca-certificates.crt")
        assert refused.rc != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr, name


def test_tasks_of_a_dag_run_execute_on_the_workers(
        hosts: dict[str, Any], secrets: dict[str, str]) -> None:
    sched = hosts[SCHED]
    token = airflow_checks.token(sched, secrets["vault_airflow_admin_password"])
    state, tis = airflow_checks.run_dag(sched, token)
    assert state == "success", tis
    ran_on = {ti["hostname"] for ti in tis}
    assert len(tis) == 2
    assert ran_on <= WORKERS, ran_on


def test_workers_hold_no_database_fernet_or_jwt_secret(
        hosts: dict[str, Any], secrets: dict[str, str]) -> None:
    # DAG code runs inside the workers: they get the Redis password (Celery's
    # queue and results) and the log server's key, nothing that decrypts
    # connections, signs task tokens or opens a PostgreSQL database. Found by
    # value: the worker's environment, and every file the airflow user can
    # read on the worker host.
    for name in WORKERS:
        worker = hosts[name]
        assert airflow_checks.secrets_held(worker, "celery-worker", secrets) == {
            "vault_airflow_api_secret_key", "vault_redis_password"}, name
        readable = worker.run(
            "runuser -u airflow -- sh -c %s",
            "find /etc /var/lib/airflow /home /tmp /opt/airflow -xdev -path /opt/airflow/venvs "
            "-prune -o -type f -readable -size -5M -print0 2>/dev/null "
            "| xargs -0 -r cat 2>/dev/null")
        # Binary files are read too: bytes that are no UTF-8 become U+FFFD, and
        # the secrets (ASCII) are still found around them.
        text = readable.stdout_bytes.decode("utf-8", errors="replace")
        assert len(text) > 1000, "found nothing the airflow user can read"
        assert not airflow_checks.keys_in(text, secrets) & {
            "vault_airflow_fernet_key", "vault_airflow_jwt_secret",
            "vault_postgresql_airflow_password", "vault_airflow_admin_password"}, name
        # airflow-env's file on a worker host: the host's components' secrets only.
        cli = worker.file("/etc/airflow/secrets/cli.env").content_string
        assert airflow_checks.keys_in(cli, secrets) == {
            "vault_airflow_api_secret_key", "vault_redis_password"}, name
    assert airflow_checks.secrets_held(hosts[SCHED], "scheduler", secrets) == {
        "vault_airflow_fernet_key", "vault_airflow_api_secret_key", "vault_airflow_jwt_secret",
        "vault_postgresql_airflow_password", "vault_redis_password"}
