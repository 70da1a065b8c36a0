"""Running Ansible from a molecule scenario's checks, as the scenario's converge does.

The verifier's environment already points Ansible at the scenario's config
(molecule's ephemeral ansible.cfg); these settings add the project's plugins,
roles and dev vault, which that config names relative to the project.

    proc = playbook("converge.yml", "--limit", "wops-mol-pg-primary")

and reading what a run printed under one task, rather than anywhere in it
(a task's banner is printed when it is skipped too, so its name in the output
proves nothing by itself):

    assert "changed: [wops-mol-pg-replica]" in task_output(
        proc.stdout, "Copy the primary with pg_basebackup")
    failed = failures(proc.stdout)   # with ANSIBLE_CALLBACK_RESULT_FORMAT=json
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

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


# A module run by Ansible's podman connection, as -vvv prints it: podman exec
# of /bin/sh -c with the Python that runs the module (directly, or inside a
# become command).
_STOCK_MODULE_RUN = re.compile(r"RUN \[b'[^']*podman', b'exec', .*b'/bin/sh', b'-c', .*python")


def ran_on_stock_connection(output: str) -> bool:
    """Whether a -vvv run ran modules over Ansible's podman connection
    (stock_ansible_env). Under mitogen the connection prints only what it does
    besides modules (podman mount, raw commands)."""
    return _STOCK_MODULE_RUN.search(output) is not None


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


# Where each task's or handler's output begins (and a play's, and the recap).
_BANNER = re.compile(r"^(?=(?:TASK|RUNNING HANDLER) \[|PLAY \[|PLAY RECAP)", re.M)
_TASK_NAME = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<name>.*)\] \*+$", re.M)
_FAILED = re.compile(r"^fatal: \[(?P<host>[^\]]+)\]: FAILED! => ", re.M)


def _sections(output: str) -> list[tuple[str, str]]:
    """(banner name, text) of every task and handler section of a run's output, in order."""
    found = []
    for section in _BANNER.split(output):
        match = _TASK_NAME.match(section)
        if match:
            found.append((match.group("name"), section))
    return found


def _is_task(banner: str, task: str) -> bool:
    """Whether a banner ('role : name' or 'name') is the task named (with or without its role)."""
    return banner == task or banner.endswith(f" : {task}")


def task_output(output: str, task: str) -> str:
    """What a run printed under the banners of one task (or handler): its host lines.

    ``task`` is the name as written in the role, with or without the
    ``role : `` prefix Ansible prints; "" when the run never reached it.
    """
    return "".join(text for name, text in _sections(output) if _is_task(name, task))


def failed_sections(output: str, limit: int = 6000) -> str:
    """The sections of a run's output whose tasks failed (fatal: or FAILED!), for a message.

    Their last ``limit`` characters, or the end of the output when none failed.
    """
    text = "".join(section for _name, section in _sections(output)
                   if "fatal: [" in section or "FAILED!" in section)
    return (text or output)[-limit:]


def failures(output: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every ``fatal: [host]: FAILED! => {...}`` of a run: (task, host, the task's result).

    The run must print results as JSON (ANSIBLE_CALLBACK_RESULT_FORMAT=json);
    the task is its banner name ('role : name').
    """
    found = []
    decoder = json.JSONDecoder()
    for name, text in _sections(output):
        for match in _FAILED.finditer(text):
            result, _end = decoder.raw_decode(text, match.end())
            found.append((name, match.group("host"), result))
    return found
