"""The scheduled DR drill's settings (roles/dr_ops, step timer_check).

The drill timer runs dr_drill.py against the environment's inventory, whose
vault (staging, production) needs its own password: the default command
passes the environment's vault id, and the check refuses a command without
one, like every other bad setting, before anything changes. Inventories that
still use the names of the pgbackrest role (pgbackrest_drill_*) keep working
and are told the new names.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]

PLAY = """\
- name: The drill timer's checks
  hosts: backup
  gather_facts: false
  tasks:
    - name: Check the timer's settings
      ansible.builtin.include_role:
        name: dr_ops
        tasks_from: timer_check
        public: true
    - name: Report the drill command
      ansible.builtin.debug:
        msg: >-
          DRILL {{ dr_ops_timer_command }} ON {{ dr_ops_timer_host }}
          AT {{ dr_ops_timer_schedule }}
"""


def _run(tmp_path: Path, environment: str, group_vars: str = "dr_ops_timer_enabled: true\n",
         **extra: object) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / environment
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "all:\n  hosts:\n    repo:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {ROOT}/.venv/bin/python\n"
        "    db1:\n      ansible_connection: local\n"
        "  children:\n    backup:\n      hosts:\n        repo:\n"
        "    postgres_primary:\n      hosts:\n        db1:\n")
    (inventory / "group_vars/all.yml").write_text(f"wops_environment: {environment}\n" + group_vars)
    return controller.run(tmp_path, "", PLAY, "--check", *controller.extra_vars(**extra),
                          inventory=inventory, merge_stderr=True,
                          extra_env={"ANSIBLE_STRATEGY": "linear"})


def _reported(proc: subprocess.CompletedProcess[str]) -> str:
    # The message as printed, folded lines joined.
    return " ".join(proc.stdout.split("DRILL ", 1)[1].split("PLAY RECAP")[0].split())


@pytest.mark.parametrize(("environment", "vault_id"), [
    ("production", "--vault-id production@/opt/warehouse-ops/scripts/vault-password-client.py"),
    ("staging", "--vault-id staging@/opt/warehouse-ops/scripts/vault-password-client.py"),
    ("dev", None),
])
def test_the_default_drill_command_names_the_environment_vault(
        tmp_path: Path, environment: str, vault_id: str | None) -> None:
    proc = _run(tmp_path, environment)
    assert proc.returncode == 0, proc.stdout[-3000:]
    line = _reported(proc)
    assert f"--inventory /opt/warehouse-ops/inventory/{environment}" in line
    assert "ON repo AT Wed *-*-* 10:00:00" in line, line
    if vault_id:
        assert vault_id in line
    else:
        assert "--vault-id" not in line
    assert "has no --vault-id" not in proc.stdout
    assert "Deprecated" not in proc.stdout


@pytest.mark.parametrize(("extra", "named"), [
    ({"dr_ops_timer_command": "/usr/bin/python3 dr_drill.py -i inventory/production"},
     "dr_ops_timer_command has no --vault-id, so the production drill could not open"),
    ({"dr_ops_timer_command": ""}, "dr_ops_timer_command is empty"),
    ({"dr_ops_timer_checkout": "opt/warehouse-ops"},
     "dr_ops_timer_checkout is 'opt/warehouse-ops'; it must be an absolute path"),
    ({"dr_ops_timer_host": "repo9"},
     "dr_ops_timer_host is 'repo9', which is not an inventory host"),
    ({"dr_ops_timer_schedule": "Wed 25:00"},
     "dr_ops_timer_schedule is 'Wed 25:00'; systemd does not accept it as an OnCalendar"),
])
def test_a_bad_setting_is_refused_naming_it(tmp_path: Path, extra: dict[str, str],
                                            named: str) -> None:
    proc = _run(tmp_path, "production", **extra)
    assert proc.returncode != 0
    assert named in controller.flat(proc.stdout), proc.stdout[-3000:]


def test_every_problem_is_named_in_one_run(tmp_path: Path) -> None:
    proc = _run(tmp_path, "production", dr_ops_timer_command="dr_drill.py",
                dr_ops_timer_checkout="checkout", dr_ops_timer_host="repo9")
    controller.assert_refused(
        proc, "dr_ops_timer_command has no --vault-id", "dr_ops_timer_checkout is 'checkout'",
              "dr_ops_timer_host is 'repo9'")


def test_a_bad_schedule_is_named_with_the_other_problems(tmp_path: Path) -> None:
    proc = _run(tmp_path, "production", dr_ops_timer_command="dr_drill.py",
                dr_ops_timer_schedule="Wed 25:00")
    controller.assert_refused(
        proc, "dr_ops_timer_command has no --vault-id",
        "dr_ops_timer_schedule is 'Wed 25:00'; systemd does not accept it")


def test_a_disabled_timer_is_not_checked(tmp_path: Path) -> None:
    proc = _run(tmp_path, "production", group_vars="dr_ops_timer_enabled: false\n",
                dr_ops_timer_command="")
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_the_pgbackrest_role_s_old_names_still_work_and_are_named(tmp_path: Path) -> None:
    proc = _run(tmp_path, "staging", group_vars=(
        "pgbackrest_drill_timer_enabled: true\n"
        "pgbackrest_drill_schedule: 'Fri *-*-* 09:30:00'\n"
        "pgbackrest_drill_checkout: /srv/warehouse-ops\n"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    line = _reported(proc)
    assert "AT Fri *-*-* 09:30:00" in line, line
    assert ("/srv/warehouse-ops/runbooks/dr_drill.py"
            " --inventory /srv/warehouse-ops/inventory/staging") in line, line
    assert "--vault-id staging@/srv/warehouse-ops/scripts/vault-password-client.py" in line
    out = controller.flat(proc.stdout)
    assert "Deprecated: the drill timer and the markers table moved" in out, out[-3000:]
    for old, new in (("pgbackrest_drill_checkout", "dr_ops_timer_checkout"),
                     ("pgbackrest_drill_schedule", "dr_ops_timer_schedule"),
                     ("pgbackrest_drill_timer_enabled", "dr_ops_timer_enabled")):
        assert f"{old} to {new}" in out, out[-3000:]
    # A refusal names the variable the inventory has to change to.
    bad = _run(tmp_path / "bad", "staging", group_vars=(
        "pgbackrest_drill_timer_enabled: true\npgbackrest_drill_command: dr_drill.py\n"))
    assert bad.returncode != 0
    assert "dr_ops_timer_command has no --vault-id" in controller.flat(bad.stdout)
