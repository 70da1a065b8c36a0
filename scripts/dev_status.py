#!/usr/bin/env python3
"""Print what runs where in a podman-backed inventory (bin/dev-up's last step).

For every host: the container's state, its published ports and the state of
the stack's services that are installed on it. Exits non-zero when a host is
not running or an installed service of its group is not active.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Services each inventory group runs, in the order they are shown.
GROUP_SERVICES: dict[str, list[str]] = {
    "postgres": ["postgresql@15-main"],
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


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False)


def _inventory(path: str) -> dict[str, list[str]]:
    proc = _run("ansible-inventory", "-i", path, "--list")
    if proc.returncode != 0:
        raise SystemExit(f"ansible-inventory -i {path} failed: {proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    hosts: dict[str, list[str]] = {}

    def walk(group: str, parents: list[str]) -> None:
        entry = data.get(group, {})
        for host in entry.get("hosts", []):
            hosts.setdefault(host, [])
            hosts[host].extend(g for g in [*parents, group] if g not in hosts[host])
        for child in entry.get("children", []):
            walk(child, [*parents, group])

    walk("all", [])
    return hosts


def main() -> int:
    inventory = sys.argv[1] if len(sys.argv) > 1 else "inventory/dev"
    problems = 0
    for host, groups in sorted(_inventory(inventory).items()):
        inspect = _run("podman", "inspect", host)
        if inspect.returncode != 0:
            print(f"{host}: no such container")
            problems += 1
            continue
        info = json.loads(inspect.stdout)[0]
        state = info["State"]["Status"]
        ports = []
        for inner, bindings in sorted((info["NetworkSettings"].get("Ports") or {}).items()):
            for b in bindings or []:
                ports.append(f"{b['HostIp']}:{b['HostPort']}->{inner}")
        shown = [g for g in groups if g not in ("all", "ungrouped")]
        print(f"{host} [{state}] groups: {', '.join(shown)}")
        if ports:
            print(f"    ports: {', '.join(ports)}")
        if state != "running":
            problems += 1
            continue
        for group in shown:
            for unit in GROUP_SERVICES.get(group, []):
                if _run("podman", "exec", host, "systemctl", "cat", unit).returncode != 0:
                    continue  # not installed (yet) on this host
                active = _run("podman", "exec", host, "systemctl", "is-active", unit)
                status = active.stdout.strip() or "unknown"
                print(f"    {unit}: {status}")
                problems += status != "active"
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
