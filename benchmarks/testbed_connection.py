#!/usr/bin/env python3
"""How fast Ansible reaches a test host, per connection, in one run.

Creates one test host from the base image (a podman container on a network of
its own, sshd on a loopback port), gives it an operator account with sudo
like the common scenario's SSH host, and runs the same playbook of N small
tasks (stat, file, command, copy, in turn) under each way of reaching it:

    benchmarks/testbed_connection.py [--tasks 40] [--rounds 3]

- podman exec with Ansible's linear strategy (containers.podman.podman)
- podman exec with mitogen's mitogen_linear strategy
- SSH (pipelining, ControlPersist) with the linear strategy
- SSH with mitogen_linear

Rounds alternate the four, so a machine that gets busier mid-run slows all of
them alike. Prints per configuration the median wall time of a run, the
time per task (the run minus a zero-task run of the same configuration, over
N) and each one's ratio to podman exec with the linear strategy. Run it with
the environment scripts/lib.sh sets up (bin/test molecule does; by hand:
`. .venv/bin/activate` and CONTAINERS_CONF=testbed/containers.conf). The
host is removed at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HOST = "wops-bench-conn"
NETWORK = "wops-bench-conn"
SSH_PORT = "22099"
IMAGE = os.environ.get("WOPS_IMAGE", "localhost/warehouse-ops/debian12-systemd:latest")
APT_CACHE = f"{os.environ.get('WOPS_CACHE', '/var/cache/warehouse-ops')}/apt-archives"
# What a host provider hands over: sshd, an operator with sudo and a key.
SETUP = """set -e
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
useradd -m -s /bin/bash wops
install -d -m 0700 -o wops -g wops /home/wops/.ssh
cat >/home/wops/.ssh/authorized_keys
chown wops:wops /home/wops/.ssh/authorized_keys
echo 'wops ALL=(ALL:ALL) NOPASSWD: ALL' >/etc/sudoers.d/wops
chmod 0440 /etc/sudoers.d/wops
systemctl start ssh
"""


def _run(*argv: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return proc  # type: ignore[no-any-return]


def _playbook(tasks: int) -> str:
    kinds = [
        "    - ansible.builtin.stat: {path: /etc/hostname}",
        "    - ansible.builtin.file: {path: /tmp/wops-bench, state: directory, mode: '0755'}",
        "    - ansible.builtin.command: {cmd: 'true'}\n      changed_when: false",
        "    - ansible.builtin.copy: {content: 'x', dest: /tmp/wops-bench/f, mode: '0644'}",
    ]
    body = "\n".join(kinds[i % len(kinds)] for i in range(tasks))
    body = body or "    - ansible.builtin.meta: noop"
    return f"- hosts: all\n  gather_facts: false\n  tasks:\n{body}\n"


def _host_up(work: Path) -> None:
    _run("podman", "rm", "-f", HOST, check=False)
    _run("podman", "network", "rm", "-f", NETWORK, check=False)
    _run("podman", "network", "create", NETWORK)
    _run("podman", "run", "-d", "--name", HOST, "--hostname", HOST, "--network", NETWORK,
         "--privileged", "--systemd=always", "-p", f"127.0.0.1:{SSH_PORT}:22",
         "-v", f"{APT_CACHE}:/var/cache/wops-apt", IMAGE, "/sbin/init")
    _run("podman", "exec", HOST, "systemctl", "is-system-running", "--wait", check=False)
    key = work / "id_ed25519"
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    public_key = (work / "id_ed25519.pub").read_text()
    _run("podman", "exec", "-i", HOST, "sh", "-c", SETUP, input=public_key)
    host_key = _run("podman", "exec", HOST, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout
    (work / "known_hosts").write_text(
        f"[127.0.0.1]:{SSH_PORT} {' '.join(host_key.split()[:2])}\n")
    # As ansible.cfg names it: without it mitogen rediscovers it every task.
    podman = {"ansible_connection": "podman", "ansible_python_interpreter": "/usr/bin/python3"}
    ssh = {
        "ansible_connection": "ssh", "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_host": "127.0.0.1", "ansible_port": int(SSH_PORT),
        "ansible_user": "wops", "ansible_become": True, "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={work / 'known_hosts'}"
        " -o StrictHostKeyChecking=yes -o ControlMaster=auto -o ControlPersist=60s",
    }
    for name, hostvars in (("podman.yml", podman), ("ssh.yml", ssh)):
        (work / name).write_text(yaml.safe_dump({"all": {"hosts": {HOST: hostvars}}}))


def _time(work: Path, inventory: str, mitogen: str | None, playbook: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_STRATEGY")}
    env["ANSIBLE_PIPELINING"] = "true"
    env["ANSIBLE_HOST_KEY_CHECKING"] = "true"
    if mitogen:
        env["ANSIBLE_STRATEGY_PLUGINS"] = mitogen
        env["ANSIBLE_STRATEGY"] = "mitogen_linear"
    start = time.monotonic()
    _run("ansible-playbook", "-i", str(work / inventory), str(playbook), env=env)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("podman") or not shutil.which("ansible-playbook"):
        raise SystemExit("podman and ansible-playbook must be on PATH (. .venv/bin/activate)")
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or spec.origin is None:
        raise SystemExit("mitogen is not installed in this environment (requirements.txt)")
    strategy_dir = str(Path(spec.origin).parent / "plugins/strategy")
    configs = [
        ("podman exec, linear", "podman.yml", None),
        ("podman exec, mitogen", "podman.yml", strategy_dir),
        ("SSH pipelining+ControlPersist, linear", "ssh.yml", None),
        ("SSH, mitogen", "ssh.yml", strategy_dir),
    ]
    work = Path(tempfile.mkdtemp(prefix="wops-bench-conn-"))
    try:
        _host_up(work)
        full, empty = work / "full.yml", work / "empty.yml"
        full.write_text(_playbook(args.tasks))
        empty.write_text(_playbook(0))
        for _, inventory, mitogen in configs:  # warm-up: connections, caches
            _time(work, inventory, mitogen, full)
        runs: dict[str, list[float]] = {name: [] for name, _, _ in configs}
        bases: dict[str, list[float]] = {name: [] for name, _, _ in configs}
        for _ in range(args.rounds):
            for name, inventory, mitogen in configs:
                bases[name].append(_time(work, inventory, mitogen, empty))
                runs[name].append(_time(work, inventory, mitogen, full))
        print(f"{args.tasks} tasks, {args.rounds} rounds, medians:")
        print(f"{'connection':40} {'run s':>7} {'per task s':>11} {'vs podman exec':>15}")
        reference = statistics.median(runs[configs[0][0]])
        for name, _, _ in configs:
            run = statistics.median(runs[name])
            per_task = (run - statistics.median(bases[name])) / args.tasks
            print(f"{name:40} {run:7.1f} {per_task:11.3f} {reference / run:14.1f}x")
    finally:
        _run("podman", "rm", "-f", HOST, check=False)
        _run("podman", "network", "rm", "-f", NETWORK, check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
