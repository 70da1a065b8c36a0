"""Shared pytest set-up for every molecule scenario's testinfra checks.

testinfra's ansible backend sends each command through Ansible's machinery,
about two seconds apiece. Molecule's podman hosts are plain containers, so the
``host`` fixture is swapped for testinfra's podman backend (``podman exec``),
which runs the same checks an order of magnitude faster.

The stack's facts (paths, service names, the stanza: testbed/stack_facts.py)
come from the ``stack`` fixture, with the scenario inventory's overrides.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from testbed import stack_facts

_PODMAN_CONNECTIONS = {"containers.podman.podman", "podman"}
_ROOT = Path(__file__).resolve().parent.parent


def _direct(host: Any) -> Any:
    backend = host.backend
    if getattr(backend, "NAME", "") != "ansible":
        return host
    hostvars = backend.ansible_runner.get_variables(backend.host)
    if hostvars.get("ansible_connection") in _PODMAN_CONNECTIONS:
        return testinfra.get_host(f"podman://{hostvars.get('ansible_host', backend.host)}")
    return host


@pytest.fixture(scope="module")
def host(_testinfra_host: Any) -> Any:
    """The scenario's host, reached with podman exec when it is a podman host."""
    return _direct(_testinfra_host)


@pytest.fixture(scope="module")
def hosts(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Every host of the scenario by inventory name (for multi-host checks)."""
    inventory = request.config.getoption("ansible_inventory")
    names = AnsibleRunner(inventory).get_hosts("all")
    return {
        name: _direct(testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}"))
        for name in names
    }


@pytest.fixture(scope="session")
def secrets() -> dict[str, str]:
    """The dev vault every scenario converges with, decrypted with its dev-only password."""
    out = subprocess.run(
        ["ansible-vault", "view", "--vault-id",
         f"dev@{_ROOT}/inventory/dev/vault-password.DEV-ONLY.txt",
         str(_ROOT / "inventory/dev/group_vars/all/vault.yml")],
        capture_output=True, text=True, check=True,
    ).stdout
    data: dict[str, str] = yaml.safe_load(out)
    return data


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> dict[str, str]:
    """The stack's facts, with the wops_* variables the scenario's inventory sets.

    The first host's variables stand for the scenario's: its wops_* facts are
    set for all hosts (group_vars/all or the scenario's molecule.yml).
    """
    inventory = request.config.getoption("ansible_inventory")
    if not inventory:
        return stack_facts.load()
    runner = AnsibleRunner(inventory)
    names = runner.get_hosts("all")
    return stack_facts.load(runner.get_variables(names[0]) if names else None)
