"""A Patroni cluster on the test hosts, as the HA checks read and drive it.

Patroni is asked over its REST API (HTTPS with the project CA, from inside a
member: the names resolve there), PostgreSQL with psql as the postgres user.

    view = patroni.cluster(hosts["wops-mol-ha-1"])
    leader = patroni.wait_for_leader(hosts, timeout=90)
    patroni.wait_for_members(hosts, leader, replicas=2)
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from testbed import stack_facts

_FACTS = stack_facts.load()
# The postgresql role's TLS directory (its certificate serves Patroni too).
CA = f"{_FACTS['wops_postgresql_conf_dir']}/tls/ca.crt"
PORT = int(_FACTS["wops_patroni_rest_port"])
SCOPE = str(_FACTS["wops_patroni_scope"])
CONFIG = str(_FACTS["wops_patroni_config"])
PIDFILE = f"{_FACTS['wops_postgresql_data_dir']}/postmaster.pid"


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` every second until it holds; the seconds it took (fails after ``timeout``)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(1)
    return time.monotonic() - start


def rest(host: Any, name: str, path: str, timeout: int = 5) -> tuple[int, Any]:
    """GET ``path`` from member ``name``'s REST API, run on ``host``: (status, JSON or None)."""
    out = host.run("curl -s -m %s --cacert %s -w '\\n%%{http_code}' https://%s:%s%s",
                   str(timeout), CA, name, str(PORT), path)
    body, _, code = out.stdout.rpartition("\n")
    try:
        parsed = json.loads(body) if body.strip() else None
    except json.JSONDecodeError:
        parsed = None
    return (int(code) if code.strip().isdigit() else 0), parsed


def cluster(host: Any, name: str) -> dict[str, Any]:
    """Member ``name``'s view of the cluster (GET /cluster); {} when it does not answer."""
    status, view = rest(host, name, "/cluster")
    return view if status == 200 and isinstance(view, dict) else {}


def leader_of(view: Mapping[str, Any]) -> str:
    """The leader's name in a /cluster view, or ''."""
    for member in view.get("members", []):
        if member.get("role") in ("leader", "master", "primary"):
            return str(member["name"])
    return ""


def in_recovery(host: Any) -> bool | None:
    """Whether the host's server is a standby; None when it does not answer."""
    out = host.run("runuser -u postgres -- psql -XAtq -d postgres -c 'SELECT pg_is_in_recovery()'")
    if out.rc != 0:
        return None
    return bool(out.stdout.strip() == "t")


def primaries(hosts: Mapping[str, Any]) -> list[str]:
    """The members whose server runs as a primary (takes writes), by PostgreSQL's own word."""
    return [name for name, host in hosts.items() if in_recovery(host) is False]


def wait_for_leader(hosts: Mapping[str, Any], timeout: float,
                    exclude: str = "") -> tuple[str, float]:
    """The member that leads (Patroni's lock and a server taking writes), and when it did.

    ``exclude`` names a member that does not count (a failover must move the
    lead away from it). Returns (name, time.monotonic() when seen).
    """
    deadline = time.monotonic() + timeout
    while True:
        for name, host in hosts.items():
            if name == exclude:
                continue
            view = cluster(host, name)
            if leader_of(view) == name and in_recovery(host) is False:
                return name, time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"no member but {exclude or 'none'} led within {timeout} s")
        time.sleep(1)


def streaming_replicas(leader: Any) -> list[dict[str, str]]:
    """The leader's streaming standbys (pg_stat_replication), by application name."""
    out = leader.run(
        "runuser -u postgres -- psql -XAtq -F '|' -d postgres -c %s",
        "SELECT application_name, state, coalesce(sync_state, '') FROM pg_stat_replication "
        "ORDER BY 1")
    if out.rc != 0:
        return []
    rows = []
    for line in out.stdout.splitlines():
        name, state, sync = line.split("|")
        rows.append({"name": name, "state": state, "sync_state": sync})
    return rows


def wait_for_members(hosts: Mapping[str, Any], leader: str, replicas: int,
                     timeout: float = 180) -> dict[str, Any]:
    """Wait until ``replicas`` members stream from ``leader`` and Patroni calls each running."""
    deadline = time.monotonic() + timeout
    while True:
        view = cluster(hosts[leader], leader)
        running = [m for m in view.get("members", [])
                   if m.get("state") in ("running", "streaming") and m.get("name") != leader]
        streaming = [r for r in streaming_replicas(hosts[leader]) if r["state"] == "streaming"]
        if leader_of(view) == leader and len(running) >= replicas and len(streaming) >= replicas:
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"{leader}: {len(streaming)} streaming replicas, {len(running)} "
                                 f"running, after {timeout} s: {view}")
        time.sleep(2)


def postmaster_pid(host: Any) -> str:
    """The postmaster's process id (first line of postmaster.pid), or ''."""
    out = host.run("head -n 1 %s", PIDFILE)
    return str(out.stdout.strip()) if out.rc == 0 else ""


def report(line: str) -> None:
    """Append a measured figure to reports/ha-failover.txt of the project (and print it)."""
    print(line)
    path = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", ".")) / "reports/ha-failover.txt"
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as f:
        f.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + line + "\n")


def _rest_login() -> tuple[str, str]:
    """The REST API's user (the postgresql role's default) and the vault key of its password."""
    import yaml  # noqa: PLC0415 - only the changing calls need it

    defaults = yaml.safe_load((Path(__file__).resolve().parent.parent
                               / "roles/postgresql/defaults/main.yml").read_text())
    return str(defaults["postgresql_patroni_rest_user"]), str(
        defaults["postgresql_patroni_rest_password_var"])


def patch_config(member: str, changes: Mapping[str, Any], secrets: Mapping[str, str]) -> Any:
    """PATCH Patroni's dynamic configuration through ``member``'s REST API (run on it).

    The login goes to curl on its standard input (``-K -``), not on a command
    line. Returns the configuration Patroni answers with.
    """
    user, key = _rest_login()
    login = f'user = "{user}:{secrets[key]}"\n'
    out = subprocess.run(
        ["podman", "exec", "-i", member, "curl", "-sS", "-f", "-m", "10", "-K", "-",
         "--cacert", CA, "-X", "PATCH", "-H", "Content-Type: application/json",
         "-d", json.dumps(dict(changes)), f"https://{member}:{PORT}/config"],
        input=login, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def address(host: Any, name: str) -> str:
    """The IPv4 address ``name`` resolves to on ``host`` (what inet_server_addr() says over TCP)."""
    out = host.check_output("getent ahostsv4 %s", name)
    return str(out.split()[0])
