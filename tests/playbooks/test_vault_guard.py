"""Outside dev, a vault that dev's password opens is refused before any task.

dev's vault password is in the repository and ansible.cfg loads it for every
run. Each case builds an inventory of the named environment whose vault is
encrypted as an operator might by mistake, and runs a play with the wops
role (every stack role depends on it) against the controller.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]
DEV_PASSWORD = ROOT / "inventory/dev/vault-password.DEV-ONLY.txt"
PLAY = """\
- name: Any play of the stack
  hosts: HOSTS
  gather_facts: false
  roles:
    - role: wops
  tasks:
    - name: A task that would change something
      ansible.builtin.debug:
        msg: "reached {{ vault_probe_secret | length }}"
"""


def _env() -> dict[str, str]:
    return controller.env(ANSIBLE_STRATEGY="linear")


def _run(tmp_path: Path, environment: str, label: str, password: Path,
         *vault_ids: str, hosts: str = "probe") -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / environment
    (inventory / "group_vars/all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "all:\n  hosts:\n    probe:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {ROOT}/.venv/bin/python\n")
    (inventory / "group_vars/all/main.yml").write_text(f"wops_environment: {environment}\n")
    vault = inventory / "group_vars/all/vault.yml"
    vault.write_text("vault_probe_secret: s3cret-probe-value\n")
    subprocess.run(["ansible-vault", "encrypt", "--vault-id", f"{label}@{password}",
                    "--encrypt-vault-id", label, str(vault)],
                   check=True, capture_output=True, env=_env(), cwd=ROOT)
    args = [arg for vid in vault_ids for arg in ("--vault-id", vid)]
    return controller.run(tmp_path, "", PLAY.replace("HOSTS", hosts), *args,
                          inventory=inventory, merge_stderr=True,
                          extra_env={"ANSIBLE_STRATEGY": "linear"})


@pytest.fixture
def other_password(tmp_path: Path) -> Path:
    path = tmp_path / "production.pw"
    path.write_text("not-the-dev-password-4e1f\n")
    path.chmod(0o600)
    return path


OUTSIDE_DEV = pytest.mark.parametrize("environment", ["staging", "production"])


@OUTSIDE_DEV
def test_a_production_vault_labelled_dev_is_refused(tmp_path: Path, environment: str) -> None:
    proc = _run(tmp_path, environment, "dev", DEV_PASSWORD)
    assert proc.returncode != 0
    # Labelled dev and opened by dev's password: the password is named first.
    assert "vault.yml opens with dev's password" in proc.stdout, proc.stdout[-3000:]
    assert "reached" not in proc.stdout
    assert "s3cret-probe-value" not in proc.stdout


@OUTSIDE_DEV
def test_a_production_vault_that_dev_password_opens_is_refused(
        tmp_path: Path, environment: str) -> None:
    # Labelled for its environment, but encrypted with dev's password (and given as its own).
    proc = _run(tmp_path, environment, environment, DEV_PASSWORD,
                f"{environment}@{DEV_PASSWORD}")
    assert proc.returncode != 0
    assert "vault.yml opens with dev's password" in proc.stdout, proc.stdout[-3000:]
    assert "reached" not in proc.stdout
    assert "s3cret-probe-value" not in proc.stdout


def test_dev_password_alone_does_not_open_a_production_vault(
        tmp_path: Path, other_password: Path) -> None:
    # vault_id_match: dev's password is not even tried on a production-labelled vault.
    proc = _run(tmp_path, "production", "production", DEV_PASSWORD)
    assert proc.returncode != 0
    assert "reached" not in proc.stdout


def test_a_production_vault_with_its_own_password_is_used(
        tmp_path: Path, other_password: Path) -> None:
    proc = _run(tmp_path, "production", "production", other_password,
                f"production@{other_password}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "reached 18" in proc.stdout


def test_dev_runs_with_its_own_vault(tmp_path: Path) -> None:
    proc = _run(tmp_path, "dev", "dev", DEV_PASSWORD)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "reached 18" in proc.stdout


@pytest.mark.parametrize("refused", [True, False])
def test_a_play_on_the_controller_checks_the_vaults_too(
        tmp_path: Path, other_password: Path, refused: bool) -> None:
    # The DR playbooks' first play runs on the implicit localhost, which has
    # no inventory_dir: the inventory's vaults are found from its sources.
    if refused:
        proc = _run(tmp_path, "production", "production", DEV_PASSWORD,
                    f"production@{DEV_PASSWORD}", hosts="localhost")
        assert proc.returncode != 0
        assert "vault.yml opens with dev's password" in proc.stdout, proc.stdout[-3000:]
        assert "reached" not in proc.stdout
    else:
        proc = _run(tmp_path, "production", "production", other_password,
                    f"production@{other_password}", hosts="localhost")
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "reached 18" in proc.stdout
