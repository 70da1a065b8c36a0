"""Running Ansible from a molecule scenario's checks, as the scenario's converge does.

The verifier's environment already points Ansible at the scenario's config
(molecule's ephemeral ansible.cfg); these settings add the project's plugins,
roles and dev vault, which that config names relative to the project.

    proc = playbook("converge.yml", "--limit", "wops-mol-pg-primary")
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAULT_ID = f"dev@{ROOT}/inventory/dev/vault-password.DEV-ONLY.txt"


def ansible_env(**extra: str) -> dict[str, str]:
    """The verifier's environment with the project's plugins, roles and dev vault."""
    env = dict(os.environ)
    env.update({
        "ANSIBLE_LIBRARY": str(ROOT / "plugins/modules"),
        "ANSIBLE_MODULE_UTILS": str(ROOT / "plugins/module_utils"),
        "ANSIBLE_FILTER_PLUGINS": str(ROOT / "plugins/filter"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_VAULT_IDENTITY_LIST": VAULT_ID,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    })
    env.update(extra)
    return env


def stock_ansible_env(**extra: str) -> dict[str, str]:
    """ansible_env() with Ansible's own strategy and connection, as over SSH to real hosts.

    Under it a task's environment (a PGPASSWORD, say) is part of the remote
    command line, which -vvv prints and ps shows: the secret searches run
    their password changes this way, since mitogen (the testbed's strategy)
    would pass the environment in-process and hide such a leak from them.
    """
    env = ansible_env(ANSIBLE_STRATEGY="linear", **extra)
    env.pop("ANSIBLE_STRATEGY_PLUGINS", None)
    return env


def playbook(name: str, *args: str, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a playbook of the scenario's directory (or a path) against its inventory.

    stdout holds both streams, in order.
    """
    path = Path(name)
    if not path.is_absolute():
        path = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / name
    return subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(path), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env or ansible_env(), check=False, cwd=cwd,
    )
