#!/usr/bin/env python3
"""Create or complete an environment's encrypted vault.yml.

    scripts/vault-init.py dev                 # add keys missing from the vault
    scripts/vault-init.py staging --force     # new random value for every key

Keys and how each value is generated come from inventory/secret-keys.yml.
Existing values are kept unless --force is given, so adding a key to
secret-keys.yml and rerunning never rotates the others. Values are never
printed. The vault password comes from the dev-only file for dev and from
scripts/vault-password-client.py for staging and production.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("dev", "staging", "production")


def _generate(kind: str) -> str:
    if kind == "password":
        return secrets.token_urlsafe(24)
    if kind == "fernet":
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    if kind == "hex":
        return secrets.token_hex(32)
    raise SystemExit(f"secret-keys.yml: unknown kind {kind!r}; use password, fernet or hex")


def _vault_id(env: str) -> str:
    if env == "dev":
        return f"dev@{ROOT / 'inventory/dev/vault-password.DEV-ONLY.txt'}"
    return f"{env}@{ROOT / 'scripts/vault-password-client.py'}"


def _run(args: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} {args[1]} failed: {proc.stderr.strip()}")
    return proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("environment", choices=ENVIRONMENTS)
    parser.add_argument("--force", action="store_true", help="regenerate every value")
    args = parser.parse_args()

    keys = yaml.safe_load((ROOT / "inventory/secret-keys.yml").read_text(encoding="utf-8"))
    vault = ROOT / "inventory" / args.environment / "group_vars/all/vault.yml"
    vault_id = _vault_id(args.environment)
    current: dict[str, str] = {}
    if vault.exists() and not args.force:
        text = _run(["ansible-vault", "view", "--vault-id", vault_id, str(vault)])
        current = yaml.safe_load(text) or {}

    added = [k for k in keys if k not in current]
    if not added and not args.force:
        print(f"{vault.relative_to(ROOT)}: all {len(keys)} keys present, nothing to do")
        return 0
    for key in added:
        current[key] = _generate(keys[key]["kind"])
    unknown = sorted(set(current) - set(keys))
    if unknown:
        print(f"note: keys not in secret-keys.yml kept: {', '.join(unknown)}", file=sys.stderr)

    body = "---\n# Encrypted secrets; keys documented in inventory/secret-keys.yml.\n"
    body += yaml.safe_dump(dict(sorted(current.items())), default_flow_style=False)
    with tempfile.NamedTemporaryFile("w", dir=vault.parent, delete=False, suffix=".tmp") as tmp:
        os.chmod(tmp.name, 0o600)
        tmp.write(body)
    try:
        _run(["ansible-vault", "encrypt", "--vault-id", vault_id,
              "--encrypt-vault-id", args.environment, tmp.name])
        os.replace(tmp.name, vault)
    finally:
        if os.path.exists(tmp.name):
            os.unlink(tmp.name)
    print(f"{vault.relative_to(ROOT)}: {len(added)} key(s) generated: {', '.join(added)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
