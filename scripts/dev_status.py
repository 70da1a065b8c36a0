#!/usr/bin/env python3
"""Print what runs where in a podman-backed inventory (bin/dev-up's last step).

For every host: the container's state, its published ports and whether each
answers from this machine (a PostgreSQL handshake on PostgreSQL and pgBouncer
ports, the health endpoint on Airflow's, over HTTPS checked against the
project CA), and the state of the stack's services that are installed on it.
Exits non-zero when a host is not running, a published port of the stack does
not answer, or an installed service of its group is not active.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from testbed import stack_facts

ROOT = Path(__file__).resolve().parents[1]

# Services each inventory group runs, in the order they are shown. A name in
# braces is a stack fact of the host (testbed/stack_facts.py, with the host's
# wops_* variables applied).
GROUP_SERVICES: dict[str, list[str]] = {
    "postgres": ["{wops_postgresql_service}"],
    "pgbouncer": ["pgbouncer"],
    "airflow": [
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    ],
    "airflow_worker": ["airflow-celery-worker"],
    "monitoring": [
        "prometheus",
        "prometheus-alertmanager",
        "prometheus-pushgateway",
        "grafana-server",
    ],
    "backup": ["pgbackrest-full.timer", "pgbackrest-diff.timer", "wops-pgdump.timer"],
}


def _project_ca(hostvars: Mapping[str, Any]) -> Path:
    """The project CA's certificate on this machine (wops_ca_dir, as a playbook run sets it)."""
    facts = stack_facts.load(hostvars, playbook_dir=ROOT / "playbooks")
    return Path(os.path.normpath(facts["wops_ca_dir"])) / "ca.crt"


def _tls_on(hostvars: Mapping[str, Any]) -> bool:
    """airflow_api_tls as the inventory sets it (the role's default: on)."""
    value = hostvars.get("airflow_api_tls", True)
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "no", "off", "0", "")
    return bool(value)


def _probe_postgres(addr: str, port: int, hostvars: Mapping[str, Any]) -> str | None:
    """None when a PostgreSQL protocol server answers an SSLRequest there."""
    try:
        with socket.create_connection((addr, port), timeout=5) as sock:
            # SSLRequest: length 8, code 80877103; the server answers S or N.
            sock.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
            answer = sock.recv(1)
    except OSError as exc:
        return f"no answer ({exc.strerror or exc})"
    return None if answer in (b"S", b"N") else f"not a PostgreSQL server (answered {answer!r})"


def _probe_airflow(addr: str, port: int, hostvars: Mapping[str, Any]) -> str | None:
    """None when Airflow's health endpoint answers with every component healthy.

    Over HTTPS (airflow_api_tls) the api-server's certificate must verify
    against the project CA, for the address the port is published on (the
    certificate names 127.0.0.1).
    """
    context: ssl.SSLContext | None = None
    url = f"http://{addr}:{port}/api/v2/monitor/health"
    if _tls_on(hostvars):
        ca = _project_ca(hostvars)
        if not ca.is_file():
            return f"no project CA at {ca} to check the api-server's certificate with"
        context = ssl.create_default_context(cafile=str(ca))
        url = f"https://{addr}:{port}/api/v2/monitor/health"
    try:
        # The URL is one of the two above: http or https, never a file: URL.
        with urllib.request.urlopen(url, timeout=10, context=context) as response:  # noqa: S310
            health = json.load(response)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        return f"no answer from {url} ({exc})"
    unhealthy = sorted(
        name for name, part in health.items()
        if isinstance(part, dict) and part.get("status") != "healthy"
    )
    return f"unhealthy: {', '.join(unhealthy)}" if unhealthy else None


# What answers on a published container port, and how to ask it.
PORT_PROBES: dict[str, tuple[str, Callable[[str, int, Mapping[str, Any]], str | None]]] = {
    "5432/tcp": ("PostgreSQL", _probe_postgres),
    "6432/tcp": ("pgBouncer", _probe_postgres),
    "8080/tcp": ("Airflow", _probe_airflow),
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False)


def _inventory(path: str) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Each host's groups, and each host's variables."""
    proc = _run("ansible-inventory", "-i", path, "--list")
    if proc.returncode != 0:
        raise SystemExit(f"ansible-inventory -i {path} failed: {proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    hostvars: dict[str, dict[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    hosts: dict[str, list[str]] = {}

    def walk(group: str, parents: list[str]) -> None:
        entry = data.get(group, {})
        for host in entry.get("hosts", []):
            hosts.setdefault(host, [])
            hosts[host].extend(g for g in [*parents, group] if g not in hosts[host])
        for child in entry.get("children", []):
            walk(child, [*parents, group])

    walk("all", [])
    return hosts, hostvars


def main() -> int:
    inventory = sys.argv[1] if len(sys.argv) > 1 else "inventory/dev"
    problems = 0
    hosts, hostvars = _inventory(inventory)
    for host, groups in sorted(hosts.items()):
        inspect = _run("podman", "inspect", host)
        if inspect.returncode != 0:
            print(f"{host}: no such container")
            problems += 1
            continue
        info = json.loads(inspect.stdout)[0]
        state = info["State"]["Status"]
        shown = [g for g in groups if g not in ("all", "ungrouped")]
        print(f"{host} [{state}] groups: {', '.join(shown)}")
        if state != "running":
            problems += 1
            continue
        for inner, bindings in sorted((info["NetworkSettings"].get("Ports") or {}).items()):
            for b in bindings or []:
                addr, port = b["HostIp"] or "127.0.0.1", int(b["HostPort"])
                published = f"{addr}:{port}->{inner}"
                if inner not in PORT_PROBES:
                    print(f"    port {published}: published (no service of the stack here yet)")
                    continue
                what, probe = PORT_PROBES[inner]
                trouble = probe(addr, port, hostvars.get(host, {}))
                print(f"    port {published}: {what} {'answers' if trouble is None else trouble}")
                problems += trouble is not None
        facts = stack_facts.load(hostvars.get(host, {}))
        for group in shown:
            for unit in (name.format_map(facts) for name in GROUP_SERVICES.get(group, [])):
                if _run("podman", "exec", host, "systemctl", "cat", unit).returncode != 0:
                    continue  # not installed (yet) on this host
                active = _run("podman", "exec", host, "systemctl", "is-active", unit)
                status = active.stdout.strip() or "unknown"
                print(f"    {unit}: {status}")
                problems += status != "active"
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
