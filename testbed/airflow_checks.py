"""What the Airflow scenarios' checks share: the REST API and a component's environment.

    code, body = api(host, "GET", "/api/v2/monitor/health")
    result = execution_api_health(host)        # the Task SDK's client, over TLS
    env = environment(host, "scheduler")
    keys = secrets_held(host, "celery-worker", secrets)   # vault keys, by value
    keys = secrets_given(host, "dag-processor", secrets)  # what systemd hands it
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

# The api-server serves TLS (airflow_api_tls): its certificate names
# 127.0.0.1 and is checked against the project CA the role installs.
API = "https://127.0.0.1:8080"
CA = "/etc/airflow/ca.crt"


def api(host: Any, method: str, path: str, token: str = "",
        body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """Call the api-server from inside the host: (HTTP status, parsed JSON or text).

    A TLS failure (an unknown CA, a wrong name) is status 0, as is no answer.
    """
    args = ["curl", "-s", "--cacert", CA, "-X", method, "-w", "\n%{http_code}",
            "-H", "Content-Type: application/json"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    if body is not None:
        args += ["-d", json.dumps(body)]
    args.append(f"{API}{path}")
    result = host.run(" ".join(["%s"] * len(args)), *args)
    text, _, code = result.stdout.rpartition("\n")
    try:
        payload: Any = json.loads(text) if text else None
    except json.JSONDecodeError:
        payload = text
    return int(code or 0), payload


def token(host: Any, password: str, user: str = "admin") -> str:
    """A JWT for the REST API."""
    code, body = api(host, "POST", "/auth/token", body={"username": user, "password": password})
    assert code in (200, 201), body
    jwt: str = body["access_token"]
    return jwt



def run_dag(host: Any, token: str, dag_id: str = "warehouse_etl",
            conf: dict[str, Any] | None = None, timeout: float = 600) -> tuple[str, list[Any]]:
    """Unpause a DAG once the dag-processor has it, trigger a run and wait for its end.

    Returns the run's final state and its task instances.
    """
    deadline = time.monotonic() + 180
    while api(host, "GET", f"/api/v2/dags/{dag_id}", token)[0] != 200:
        assert time.monotonic() < deadline, f"the DAG {dag_id} never showed up"
        time.sleep(2)
    code, body = api(host, "PATCH", f"/api/v2/dags/{dag_id}", token, {"is_paused": False})
    assert code == 200, body
    code, run = api(host, "POST", f"/api/v2/dags/{dag_id}/dagRuns", token,
                    {"logical_date": None, **({"conf": conf} if conf is not None else {})})
    assert code == 200, run
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}"
    deadline = time.monotonic() + timeout
    state = ""
    while state not in ("success", "failed"):
        assert time.monotonic() < deadline, f"DAG run {run['dag_run_id']} still {state}"
        time.sleep(2)
        state = api(host, "GET", path, token)[1]["state"]
    _, tis = api(host, "GET", f"{path}/taskInstances", token)
    return state, tis["task_instances"]

# The execution API's health through the Task SDK's own client, as a task
# process builds it from the host's configuration (its CA, its URL).
_SDK_HEALTH = (
    "import json; from airflow.sdk.configuration import conf; "
    "from airflow.sdk.api.client import Client; "
    "url = conf.get('core', 'execution_api_server_url'); "
    "c = Client(base_url=url, token='none'); "
    "print(json.dumps({'url': url, 'health': c.get('health').json()}))"
)


def execution_api_health(host: Any, **settings: str) -> Any:
    """Ask the execution API for its health with the Task SDK's client, as a task would.

    `settings` are extra environment variables (AIRFLOW__API__SSL_CA_FILE=...)
    for a negative check; each try is made once, with a minute to answer (the
    api-server's first execution API request may take longer than the
    client's default 5 s on a loaded test host). The command's result: its
    last output line is {"url": ..., "health": ...} when the call worked.
    """
    env = [f"{k}={v}" for k, v in
           {"AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "1",
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60", **settings}.items()]
    args = ["/usr/local/sbin/airflow-env", "env", *env,
            "/opt/airflow/current/bin/python", "-c", _SDK_HEALTH]
    return host.run(" ".join(["%s"] * len(args)), *args)


def environment(host: Any, component: str) -> dict[str, str]:
    """The environment the running airflow-<component> process was started with."""
    pid = host.check_output("systemctl show -p MainPID --value airflow-%s", component)
    assert pid not in ("", "0"), f"airflow-{component} is not running"
    raw = host.check_output("tr '\\0' '\\n' < /proc/%s/environ", pid)
    env = {}
    for line in raw.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            env[name] = value
    return env


def _forms(value: str) -> set[str]:
    """A secret as it may appear: as it is, or percent-encoded inside a URL."""
    return {value, quote(value, safe=""), quote(value, safe="").replace("%2F", "/")}


def keys_in(text: str, secrets: Mapping[str, object]) -> set[str]:
    """The vault keys whose value (as it is or URL-encoded) is in text."""
    return {key for key, value in secrets.items()
            if isinstance(value, str) and len(value) >= 8
            and any(form in text for form in _forms(value))}


def environment_files(host: Any, component: str) -> str:
    """What systemd reads into airflow-<component>'s environment: its EnvironmentFiles, as root."""
    listed = host.check_output("systemctl show -p EnvironmentFiles --value airflow-%s", component)
    paths = [line.split(" (", 1)[0].strip() for line in listed.splitlines() if line.strip()]
    assert paths, f"airflow-{component} reads no environment file"
    return "\n".join(host.file(path).content_string for path in paths)


def unit_environment(host: Any, component: str) -> str:
    """The variables airflow-<component>'s unit sets itself (Environment=), as systemd has them."""
    out: str = host.check_output("systemctl show -p Environment --value airflow-%s", component)
    return out


def variables_in(text: str) -> set[str]:
    """The names an environment file (NAME="value" lines) assigns."""
    return set(re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*)=", text, re.M))


def env_text(env: Mapping[str, str]) -> str:
    """An environment as NAME=value lines, for keys_in."""
    return "\n".join(f"{k}={v}" for k, v in env.items())


def secrets_given(host: Any, component: str, secrets: Mapping[str, object]) -> set[str]:
    """The vault keys whose value systemd hands airflow-<component>, whatever variable
    carries it: in the files it reads into the environment or the unit's own Environment=."""
    return keys_in(environment_files(host, component) + "\n" + unit_environment(host, component),
                   secrets)


def secrets_held(host: Any, component: str, secrets: Mapping[str, object]) -> set[str]:
    """The vault keys whose value the component is given, by value, whatever variable
    carries it: what systemd hands it (secrets_given), or what its running process's
    environment holds (which Airflow's process titles may overwrite)."""
    return secrets_given(host, component, secrets) | keys_in(
        env_text(environment(host, component)), secrets)
