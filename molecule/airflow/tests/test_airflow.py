"""Airflow 3 (LocalExecutor) beside PostgreSQL and pgBouncer: observed behaviour."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from testbed import airflow_checks, scenario

HOST = "wops-mol-af-db"
COMPONENTS = ["api-server", "scheduler", "dag-processor", "triggerer"]
BATCH = "batch_af_0001"


def _curl(host: Any, method: str, path: str, token: str = "",
          body: dict[str, Any] | None = None) -> tuple[int, Any]:
    return airflow_checks.api(host, method, path, token, body)


def _token(host: Any, secrets: dict[str, str]) -> str:
    return airflow_checks.token(host, secrets["vault_airflow_admin_password"])


def _health(host: Any) -> dict[str, Any]:
    code, body = _curl(host, "GET", "/api/v2/monitor/health")
    assert code == 200, body
    health: dict[str, Any] = body
    return health


def _pids(host: Any) -> dict[str, str]:
    return {c: host.check_output("systemctl show -p MainPID --value airflow-%s", c)
            for c in COMPONENTS}


def _side_effect(*extra: str) -> subprocess.CompletedProcess[str]:
    """side_effect.yml with extra arguments; stdout holds both streams, results as JSON."""
    scenario_dir = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    return subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         str(scenario_dir / "side_effect.yml"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
             "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"},
    )


def test_every_component_reports_healthy(hosts: dict[str, Any]) -> None:
    health = _health(hosts[HOST])
    statuses = {name: part.get("status") for name, part in health.items()}
    assert set(statuses) >= {"metadatabase", "scheduler", "triggerer", "dag_processor"}
    assert set(statuses.values()) == {"healthy"}, statuses
    for component in COMPONENTS:
        assert hosts[HOST].service(f"airflow-{component}").is_running


def test_the_api_server_serves_tls_from_the_project_ca(hosts: dict[str, Any]) -> None:
    host = hosts[HOST]
    # The certificate names the host as its peers reach it, and the project
    # CA (the copy the role installs) vouches for it.
    ok = host.run("curl -sS -o /dev/null -w '%%{http_code}' --cacert /etc/airflow/ca.crt "
                  "https://%s:8080/api/v2/monitor/health", HOST)
    assert ok.stdout == "200", ok.stderr
    # Public CAs do not.
    public = host.run("curl -sS -o /dev/null --cacert /etc/ssl/certs/ca-certificates.crt "
                      "https://%s:8080/api/v2/monitor/health", HOST)
    assert public.rc == 60, (public.rc, public.stderr)
    # Plain HTTP gets no answer at all.
    plain = host.run("curl -sS -o /dev/null http://127.0.0.1:8080/api/v2/monitor/health")
    assert plain.rc == 52, (plain.rc, plain.stderr)
    key = host.file("/etc/airflow/tls/api-server.key")
    assert (key.user, key.group, key.mode) == ("airflow", "airflow", 0o600)
    issuer = host.check_output("openssl x509 -noout -issuer -in /etc/airflow/tls/api-server.crt")
    assert issuer == host.check_output("openssl x509 -noout -subject -in /etc/airflow/ca.crt") \
        .replace("subject=", "issuer=")
    cfg = host.file("/etc/airflow/airflow.cfg").content_string
    assert f"execution_api_server_url = https://{HOST}:8080/execution/" in cfg
    assert f"base_url = https://{HOST}:8080" in cfg
    # The Task SDK's client checks the execution API against the project CA
    # alone: with the public CAs instead, it refuses the server.
    sdk = airflow_checks.execution_api_health(host)
    assert sdk.rc == 0, sdk.stderr[-2000:]
    assert json.loads(sdk.stdout.strip().splitlines()[-1])["health"] == {"status": "healthy"}
    refused = airflow_checks.execution_api_health(
        host, AIRFLOW__API__SSL_CA_FILE="/etc/ssl/certs/ca-certificates.crt")
    assert refused.rc != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr, refused.stderr[-2000:]


def test_authentication_is_on_and_config_is_hidden(
        hosts: dict[str, Any], secrets: dict[str, str]) -> None:
    host = hosts[HOST]
    assert _curl(host, "GET", "/api/v2/dags")[0] == 401
    code, _ = _curl(host, "POST", "/auth/token",
                    body={"username": "admin", "password": "not-the-password"})
    assert code == 401
    token = _token(host, secrets)
    assert _curl(host, "GET", "/api/v2/dags", token)[0] == 200
    # expose_config = False: the config endpoint refuses even the admin.
    assert _curl(host, "GET", "/api/v2/config", token)[0] == 403


def _airflow_backends(host: Any) -> set[str]:
    """'address port' of each PostgreSQL backend of the airflow role in the airflow database."""
    out: str = host.check_output(
        "runuser -u postgres -- psql -XAtF ' ' -c \"SELECT host(client_addr), client_port "
        "FROM pg_stat_activity WHERE datname = 'airflow' AND usename = 'airflow' "
        "AND backend_type = 'client backend'\"")
    return {line.strip() for line in out.splitlines() if line.strip()}


def _pgbouncer_server_sockets(host: Any, secrets: dict[str, str]) -> set[str]:
    """'address port' of the local end of each server connection pgBouncer holds to airflow."""
    out: str = host.check_output(
        "env PGPASSWORD=%s psql --csv -Xc 'SHOW SERVERS' %s",
        secrets["vault_pgbouncer_admin_password"],
        f"host={HOST} port=6432 dbname=pgbouncer user=pgbouncer_admin sslmode=verify-full "
        "sslrootcert=/etc/pgbouncer/tls/ca.crt")
    rows = list(csv.DictReader(io.StringIO(out)))
    return {f"{r['local_addr']} {r['local_port']}" for r in rows if r["database"] == "airflow"}


def test_metadata_goes_through_pgbouncer_and_secrets_stay_private(
        hosts: dict[str, Any], secrets: dict[str, str]) -> None:
    host = hosts[HOST]
    # Every backend Airflow holds in PostgreSQL is one pgBouncer opened: its
    # client address and port are the local end of a pgBouncer server
    # connection (a direct connection would be a backend pgBouncer does not
    # know). Connections come and go, so a few tries.
    backends: set[str] = set()
    servers: set[str] = set()
    for _ in range(10):
        backends = _airflow_backends(host)
        servers = _pgbouncer_server_sockets(host, secrets)
        if backends and backends <= servers:
            break
        time.sleep(3)
    assert backends, "Airflow holds no connection to its database"
    assert backends <= servers, f"not through pgBouncer: {sorted(backends - servers)}"
    assert ":6432/airflow?sslmode=" in airflow_checks.environment(host, "scheduler")[
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    # The secrets are in root-only files; the shared environment holds none.
    secrets_dir = host.file("/etc/airflow/secrets")
    assert secrets_dir.mode == 0o700 and secrets_dir.user == "root"
    for name in [*COMPONENTS, "cli"]:
        f = host.file(f"/etc/airflow/secrets/{name}.env")
        assert f.mode == 0o600 and f.user == "root" and f.group == "root", name
    denied = host.run("runuser -u airflow -- cat /etc/airflow/secrets/scheduler.env")
    assert denied.rc != 0 and "Permission denied" in denied.stderr
    shared = host.file("/etc/airflow/airflow.env").content_string
    assert airflow_checks.keys_in(shared, secrets) == set()
    cfg = host.check_output("cat /etc/airflow/airflow.cfg")
    assert "expose_config = False" in cfg and "executor = LocalExecutor" in cfg
    # Secrets never land in airflow.cfg (Airflow writes random ones there
    # itself when the file is missing).
    assert "fernet_key" not in cfg and "jwt_secret" not in cfg


def test_database_clients_check_the_server_certificate(
        hosts: dict[str, Any], secrets: dict[str, str]) -> None:
    """Airflow's metadata URL, its warehouse connection and the ETL use verify-full."""
    host = hosts[HOST]
    ca = "/etc/airflow/ca.crt"
    scheduler = airflow_checks.environment(host, "scheduler")
    url = urlsplit(scheduler["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    query = parse_qs(url.query)
    assert query.get("sslmode") == ["verify-full"] and query.get("sslrootcert") == [ca], url.query
    connection = json.loads(host.check_output("cat /etc/airflow/secrets/connections.json"))
    extra = json.loads(next(iter(connection.values()))["extra"])
    assert extra == {"sslmode": "verify-full", "sslrootcert": ca}, extra
    etl = host.check_output("cat /etc/warehouse-etl/etl.env")
    assert "sslmode=verify-full sslrootcert=/etc/warehouse-etl/ca.crt" in etl, etl
    # What verify-full does with these settings: the server's certificate is
    # checked against the project CA (a login), and refused against the
    # public CAs alone, so a server with another certificate is never talked to.
    login = (f"host={url.hostname} port={url.port} dbname=airflow user=airflow "
             "sslmode=verify-full connect_timeout=10 sslrootcert=")
    password = secrets["vault_postgresql_airflow_password"]
    ok = host.run("PGPASSWORD=%s psql %s -XAtc 'SELECT 1'", password, login + ca)
    assert ok.rc == 0 and ok.stdout.strip() == "1", ok.stderr
    public = host.run("PGPASSWORD=%s psql %s -XAtc 'SELECT 1'", password,
                      login + "/etc/ssl/certs/ca-certificates.crt")
    assert public.rc != 0 and "certificate verify failed" in public.stderr, public.stderr


def test_the_dag_file_parses_in_the_release_without_side_effects(hosts: dict[str, Any]) -> None:
    """The ETL DAG imports with the release's Airflow, in an empty environment.

    No database URL, no secrets, a throwaway AIRFLOW_HOME: parsing must not
    need a connection or write anywhere but there.
    """
    host = hosts[HOST]
    # Airflow's own parser (DagBag), as the dag-processor runs it.
    script = ("import json, sys; from airflow.dag_processing.dagbag import DagBag; "
              "b = DagBag(dag_folder=sys.argv[1], include_examples=False) "
              "if 'include_examples' in DagBag.__init__.__code__.co_varnames "
              "else DagBag(dag_folder=sys.argv[1]); "
              "print(json.dumps({'dags': {k: len(v.tasks) for k, v in b.dags.items()}, "
              "'errors': {k: str(v)[-300:] for k, v in b.import_errors.items()}}))")
    out = host.run(
        "home=$(mktemp -d) && chown airflow \"$home\" && runuser -u airflow -- env -i "
        "AIRFLOW_HOME=\"$home\" AIRFLOW__CORE__LOAD_EXAMPLES=False "
        "/opt/airflow/current/bin/python -c %s /var/lib/airflow/dags/warehouse_etl_dag.py", script)
    assert out.rc == 0, out.stderr
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert list(parsed["dags"]) == ["warehouse_etl"] and parsed["dags"]["warehouse_etl"] > 0


def test_dag_run_of_the_etl_loads_a_tpch_batch(
        hosts: dict[str, Any], secrets: dict[str, str], stack: dict[str, str]) -> None:
    host = hosts[HOST]
    incoming = stack["wops_etl_incoming_dir"]
    batch_dir = f"{incoming}/{BATCH}"
    host.check_output(
        "runuser -u warehouse-etl -- /opt/warehouse-etl/venv/bin/etl generate "
        "--scale-factor 0.01 --output %s", batch_dir)
    lines = int(host.check_output("wc -l < %s/lineitem.tbl", batch_dir))
    state, tis = airflow_checks.run_dag(host, _token(host, secrets),
                                        conf={"incoming_dir": incoming})
    assert state == "success", tis
    assert {ti["hostname"] for ti in tis} == {HOST}
    ledger = host.check_output(
        "runuser -u postgres -- psql -d warehouse -XAtc \"SELECT status || ' ' || "
        "(SELECT count(*) FROM warehouse.fact_sales) FROM warehouse.etl_runs "
        f"WHERE batch_id = '{BATCH}' AND status = 'loaded'\"")
    assert ledger == f"loaded {lines}"


def test_a_component_setting_restarts_that_component_only(hosts: dict[str, Any]) -> None:
    host = hosts[HOST]
    before = _pids(host)
    current = host.check_output(
        "sed -n 's/^AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=\"\\(.*\\)\"$/\\1/p' "
        "/etc/airflow/dag-processor.env")
    interval = int(current) + 1
    proc = _side_effect("-e", f"airflow_dag_processor_refresh_interval={interval}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    after = _pids(host)
    assert after["dag-processor"] != before["dag-processor"]
    assert {c: after[c] for c in COMPONENTS if c != "dag-processor"} == \
        {c: before[c] for c in COMPONENTS if c != "dag-processor"}
    assert f"AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=\"{interval}\"" in host.file(
        "/etc/airflow/dag-processor.env").content_string
    # The restarted process runs with the new value, as systemd read it from that file.
    running = airflow_checks.environment(host, "dag-processor")
    assert running.get("AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL") == str(interval), running.get(
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL")
    health = _health(host)
    assert {p.get("status") for p in health.values()} == {"healthy"}, health


def test_a_failed_migration_leaves_the_old_release_serving(hosts: dict[str, Any]) -> None:
    host = hosts[HOST]
    current = host.check_output("readlink /opt/airflow/current")
    interval = host.check_output(
        "sed -n 's/^AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=\"\\(.*\\)\"$/\\1/p' "
        "/etc/airflow/dag-processor.env")
    before = _pids(host)
    # A new release (one more package) whose migration step cannot reach
    # PostgreSQL: the components must stay on the running release.
    proc = _side_effect(
        "-e", f"airflow_dag_processor_refresh_interval={interval}",
        "-e", '{"airflow_extra_packages": ["apache-airflow-providers-fab", "async-timeout"]}',
        "-e", "airflow_migrate_db_port=1")
    assert proc.returncode != 0
    # The run stopped at the migration, with airflow db migrate's own error:
    # the one failure is that task's, its command is the migration, and it
    # could not reach PostgreSQL on the port it was given.
    failed = scenario.failures(proc.stdout)
    assert [(task, host) for task, host, _ in failed] == [
        ("airflow : Migrate the metadata database", HOST)], proc.stdout[-3000:]
    result = failed[0][2]
    assert result["cmd"][-2:] == ["db", "migrate"] and result["rc"] != 0, result
    error = result.get("stderr", "") + result.get("stdout", "")
    assert "port 1 failed: Connection refused" in error, error[-3000:]
    assert "Point current at the release" not in proc.stdout
    installed = host.check_output("ls /opt/airflow/venvs").split()
    assert len(installed) >= 2, installed
    assert host.check_output("readlink /opt/airflow/current") == current
    assert _pids(host) == before
    health = _health(host)
    assert {p.get("status") for p in health.values()} == {"healthy"}, health
    # The failed run left the new release's configuration written (its
    # migration settings among it); the inventory's is put back, as the
    # operator's next run would, so the later checks start from it.
    back = _side_effect("--tags", "airflow_configure,airflow_run")
    assert back.returncode == 0, back.stdout[-3000:]


# Which vault secrets each component's own process holds (Airflow 3.3,
# LocalExecutor), found by value whatever variable carries them.
EXPECTED_SECRETS = {
    "api-server": {"vault_airflow_fernet_key", "vault_airflow_api_secret_key",
                   "vault_airflow_jwt_secret", "vault_postgresql_airflow_password"},
    "scheduler": {"vault_airflow_fernet_key", "vault_airflow_api_secret_key",
                  "vault_airflow_jwt_secret", "vault_postgresql_airflow_password"},
    "dag-processor": {"vault_airflow_fernet_key", "vault_postgresql_airflow_password"},
    "triggerer": {"vault_airflow_fernet_key", "vault_airflow_api_secret_key",
                  "vault_postgresql_airflow_password"},
}


def test_each_component_holds_only_the_secrets_it_needs(
        hosts: dict[str, Any], secrets: dict[str, str]) -> None:
    host = hosts[HOST]
    # What systemd hands each component: its environment files and the unit's
    # own Environment=, exactly the listed secrets.
    given = {c: airflow_checks.secrets_given(host, c, secrets) for c in COMPONENTS}
    assert given == EXPECTED_SECRETS
    # What each running process was started with (/proc/<MainPID>/environ):
    # no secret beyond those, whichever way it came.
    started = {c: airflow_checks.environment(host, c) for c in COMPONENTS}
    for component, env in started.items():
        extra = airflow_checks.keys_in(airflow_checks.env_text(env), secrets) \
            - EXPECTED_SECRETS[component]
        assert not extra, (component, sorted(extra))
    # The dag-processor, whose children import the DAG files, sets no process
    # title over its environ: it holds every variable its files assign (so
    # this is the environment systemd started it with), and in it exactly its
    # own secrets, the fernet key and the database URL, and neither the JWT
    # secret nor [api] secret_key.
    dag_processor = started["dag-processor"]
    assigned = airflow_checks.variables_in(airflow_checks.environment_files(host, "dag-processor"))
    assert assigned and assigned <= set(dag_processor), sorted(assigned - set(dag_processor))
    assert airflow_checks.keys_in(airflow_checks.env_text(dag_processor), secrets) \
        == EXPECTED_SECRETS["dag-processor"]
    # Every component is healthy with only those.
    assert {part.get("status") for part in _health(host).values()} == {"healthy"}
