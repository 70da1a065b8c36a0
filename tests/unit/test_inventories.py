"""The three inventories parse, carry the stack's groups, and keep secrets in vaults."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ["dev", "staging", "production"]
STACK_GROUPS = {"postgres", "postgres_primary", "postgres_replica", "pgbouncer",
                "airflow", "monitoring", "backup"}
VAULT_KEYS = yaml.safe_load((ROOT / "inventory/secret-keys.yml").read_text())


def _groups(node: dict[str, Any], found: dict[str, set[str]]) -> set[str]:
    """Walk a YAML inventory; return the hosts under node, filling group -> hosts."""
    hosts: set[str] = set(node.get("hosts") or {})
    for name, child in (node.get("children") or {}).items():
        hosts |= _groups(child or {}, found)
        found[name] = found.get(name, set()) | _groups(child or {}, {})
    return hosts


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_inventory_has_every_stack_group_with_hosts(env: str) -> None:
    data = yaml.safe_load((ROOT / f"inventory/{env}/hosts.yml").read_text())
    found: dict[str, set[str]] = {}
    _groups(data["all"], found)
    empty = {g for g in STACK_GROUPS if not found.get(g)}
    assert empty == set(), f"inventory/{env} lacks hosts in groups {empty}"


def test_dev_inventory_parses_with_its_vault() -> None:
    proc = subprocess.run(
        ["ansible-inventory", "-i", "inventory/dev", "--list"],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
    )
    assert proc.returncode == 0, proc.stderr
    hostvars = json.loads(proc.stdout)["_meta"]["hostvars"]
    assert {h["wops_environment"] for h in hostvars.values()} == {"dev"}
    assert all("vault_postgresql_etl_password" in h for h in hostvars.values())


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_name_matches_directory(env: str) -> None:
    main = yaml.safe_load((ROOT / f"inventory/{env}/group_vars/all/main.yml").read_text())
    assert main["wops_environment"] == env


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_vault_is_encrypted_with_the_environment_id(env: str) -> None:
    head = (ROOT / f"inventory/{env}/group_vars/all/vault.yml").read_text().splitlines()[0]
    assert head == f"$ANSIBLE_VAULT;1.2;AES256;{env}"


def test_dev_vault_holds_every_documented_secret() -> None:
    out = subprocess.run(
        ["ansible-vault", "view", "inventory/dev/group_vars/all/vault.yml"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout
    keys = set(yaml.safe_load(out))
    assert set(VAULT_KEYS) - keys == set(), "run scripts/vault-init.py dev"


def test_every_vault_reference_is_documented() -> None:
    referenced: set[str] = set()
    for path in [*ROOT.glob("inventory/**/*.yml"), *ROOT.glob("roles/**/*.yml"),
                 *ROOT.glob("playbooks/*.yml"), *ROOT.glob("molecule/**/*.yml")]:
        if path.name == "vault.yml" or path.name == "secret-keys.yml":
            continue
        referenced |= set(re.findall(r"\bvault_[a-z0-9_]+", path.read_text()))
    undocumented = referenced - set(VAULT_KEYS)
    assert undocumented == set(), f"add to inventory/secret-keys.yml: {sorted(undocumented)}"


def test_no_plaintext_secret_in_group_vars() -> None:
    secretish = re.compile(
        r"^\s*[a-z0-9_]*(password|secret|fernet_key|cipher_pass)[a-z0-9_]*:\s*(.+)$"
    )
    offenders = []
    for path in ROOT.glob("inventory/**/*.yml"):
        if path.name in {"vault.yml", "secret-keys.yml"}:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = secretish.match(line)
            if m and "vault_" not in m.group(2) and m.group(2).strip() not in {"''", '""', "null"}:
                offenders.append(f"{path.relative_to(ROOT)}:{n}")
    assert offenders == [], f"secrets must come from the vault: {offenders}"
