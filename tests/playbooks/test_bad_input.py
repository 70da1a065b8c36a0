"""Bad input fails early, names the culprit, and changes nothing.

These run real ansible-playbook and bin/ commands; the failing checks happen
before any host is contacted, so no test hosts are needed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]


def _playbook(*args: str, inventory: str = "inventory/dev") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ansible-playbook", "-i", inventory, *args],
        capture_output=True, text=True, cwd=ROOT, check=False, env=controller.env(),
    )


def _probe(tmp_path: Path) -> Path:
    """An inventory of one local host in no stack group."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    probe:\n      ansible_connection: local\n"
        "      ansible_python_interpreter: " + str(ROOT / ".venv/bin/python") + "\n"
        "      wops_environment: dev\n"
    )
    return inventory


def test_unknown_environment_fails_in_preflight_naming_the_variable() -> None:
    proc = _playbook("playbooks/site.yml", "-e", "wops_environment=qa")
    assert proc.returncode != 0
    assert "wops_environment is 'qa'" in proc.stdout
    # Nothing ran past the preflight play: no host was contacted.
    assert "Gathering Facts" not in proc.stdout
    assert "changed=0" in proc.stdout and not re.search(r"\bchanged=[1-9]", proc.stdout)


def test_wrong_type_fails_argument_validation_before_any_task(tmp_path: Path) -> None:
    inventory = _probe(tmp_path)
    proc = _playbook("playbooks/site.yml", "-e", "common_sshd_max_auth_tries=many",
                     inventory=str(inventory))
    assert proc.returncode != 0
    assert "common_sshd_max_auth_tries" in proc.stdout
    assert "Validating arguments against arg spec" in proc.stdout
    assert "changed=0" in proc.stdout


def test_unknown_environment_choice_is_rejected_by_the_role(tmp_path: Path) -> None:
    inventory = _probe(tmp_path)
    proc = _playbook("playbooks/site.yml", "-e", "common_environment=prod",
                     inventory=str(inventory))
    assert proc.returncode != 0
    assert "common_environment" in proc.stdout and "prod" in proc.stdout


def _entry(command: str, env: dict[str, str] | None = None,
           user: str | None = None, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    argv = [str(root / "bin" / command)]
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, cwd="/", check=False,
                          env={**os.environ, **(env or {})}, timeout=120)


def _world_readable_copy(base: Path) -> Path:
    """bin/ and scripts/lib.sh where an unprivileged user can read them."""
    copy = base / "repo"
    for rel in ("bin/dev-up", "bin/test", "scripts/lib.sh"):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, copy / rel)
    for path in [base, *copy.rglob("*"), copy]:
        path.chmod(0o755)
    return copy


def test_entry_points_refuse_to_run_without_root() -> None:
    # pytest's tmp_path is private to root: use a directory under /tmp.
    with tempfile.TemporaryDirectory() as base:
        copy = _world_readable_copy(Path(base))
        procs = [_entry(command, user="nobody", root=copy) for command in ("dev-up", "test")]
    for proc in procs:
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "must run as root" in lines[0], proc.stderr


def test_entry_points_refuse_to_run_without_free_disk() -> None:
    for command in ("dev-up", "test"):
        proc = _entry(command, env={"WOPS_MIN_FREE_MB": str(10**12)})
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "MB free" in lines[0] and "free at least" in lines[0]


def test_missing_podman_is_a_one_line_error() -> None:
    proc = subprocess.run(
        ["bash", "-c", f"source {ROOT}/scripts/lib.sh; PATH=/nonexistent; wops_podman"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip() == (
        "error: podman not found: apt-get install podman runc netavark aardvark-dns "
        "(or run bin/dev-up as root, which installs them)"
    )


def test_a_stage_tag_alone_runs_site_with_the_hosts_facts(tmp_path: Path) -> None:
    # An operator's run of one stage (--tags <role>_<stage>) selects none of
    # the tiers' play tags; the hosts' facts are gathered all the same, so the
    # stage's tasks have what they read (the platform, among others).
    inventory = _probe(tmp_path)
    proc = _playbook("playbooks/site.yml", "--check", "--tags", "common_preflight",
                     inventory=str(inventory))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    base = proc.stdout.split("PLAY [Base configuration for every host]", 1)[1]
    assert "ok: [probe]" in base.split("TASK [", 2)[1], base[:2000]
    assert "TASK [common : " in base
