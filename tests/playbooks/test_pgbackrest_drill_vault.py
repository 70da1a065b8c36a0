"""The scheduled DR drill opens the environment's vault outside dev.

The drill timer runs dr_drill.py against the environment's inventory, whose
vault (staging, production) needs its own password: the default command
passes the environment's vault id, and preflight refuses a command without
one before anything changes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]

PLAY = """\
- name: The pgbackrest role's preflight and drill command
  hosts: probe
  gather_facts: false
  tasks:
    - name: Run the preflight
      ansible.builtin.include_role:
        name: pgbackrest
        tasks_from: preflight
        public: true
    - name: Report the drill command
      ansible.builtin.debug:
        msg: "DRILL {{ pgbackrest_drill_command }}"
"""


def _run(tmp_path: Path, environment: str, **extra: object) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / environment
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "all:\n  hosts:\n    probe:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {ROOT}/.venv/bin/python\n"
        # The controller has no sudo; root becomes postgres with su.
        "      ansible_become_method: su\n"
        # The probe restores (drills) from a primary that is not in the play.
        "    db1:\n      ansible_connection: local\n"
        "  children:\n    postgres_primary:\n      hosts:\n        db1:\n")
    (inventory / "group_vars/all.yml").write_text(
        f"wops_environment: {environment}\npgbackrest_cipher_pass: not-a-real-passphrase\n"
        "pgbackrest_drill_timer_enabled: true\npgbackrest_restore_hosts: [probe]\n")
    return controller.run(tmp_path, "", PLAY, "--check", *controller.extra_vars(**extra),
                          inventory=inventory, merge_stderr=True,
                          extra_env={"ANSIBLE_STRATEGY": "linear"})


@pytest.mark.parametrize(("environment", "vault_id"), [
    ("production", "--vault-id production@/opt/warehouse-ops/scripts/vault-password-client.py"),
    ("staging", "--vault-id staging@/opt/warehouse-ops/scripts/vault-password-client.py"),
    ("dev", None),
])
def test_the_default_drill_command_names_the_environment_vault(
        tmp_path: Path, environment: str, vault_id: str | None) -> None:
    proc = _run(tmp_path, environment)
    assert proc.returncode == 0, proc.stdout[-3000:]
    # The message as printed, folded lines joined.
    line = " ".join(proc.stdout.split("DRILL ", 1)[1].split("PLAY RECAP")[0].split())
    assert f"--inventory /opt/warehouse-ops/inventory/{environment}" in line
    if vault_id:
        assert vault_id in line
    else:
        assert "--vault-id" not in line
    assert "pgbackrest_drill_command has no --vault-id" not in proc.stdout


def test_a_drill_command_without_a_vault_id_is_refused_outside_dev(tmp_path: Path) -> None:
    proc = _run(tmp_path, "production",
                pgbackrest_drill_command="/usr/bin/python3 dr_drill.py -i inventory/production")
    assert proc.returncode != 0
    assert "pgbackrest_drill_command has no --vault-id" in proc.stdout, proc.stdout[-3000:]
