"""What the Airflow scenarios' checks share: the REST API and a component's environment.

    code, body = api(host, "GET", "/api/v2/monitor/health")
    names = secret_names(host, "scheduler")
"""

from __future__ import annotations

import json
from typing import Any

API = "http://127.0.0.1:8080"
# Every environment variable the airflow role may put a secret in.
SECRET_VARIABLES = frozenset({
    "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
})


def api(host: Any, method: str, path: str, token: str = "",
        body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """Call the api-server from inside the host: (HTTP status, parsed JSON or text)."""
    args = ["curl", "-s", "-X", method, "-w", "\n%{http_code}",
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


def secret_names(host: Any, component: str) -> set[str]:
    """Which secret-bearing variables the running component holds (names, never values)."""
    return set(environment(host, component)) & SECRET_VARIABLES
