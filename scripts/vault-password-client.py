#!/usr/bin/env python3
"""Vault password client for the staging and production inventories.

Ansible calls it as ``vault-password-client.py --vault-id <env>``. The password
never lives in the repository: it is read from, in order,

1. the environment variable ``WOPS_VAULT_PASSWORD_<ENV>`` (CI secret stores),
2. the file ``$WOPS_VAULT_PASSWORD_DIR/<env>`` (default
   ``~/.config/warehouse-ops/vault/<env>``), which must not be readable by
   group or others.

When neither exists it prints nothing and exits 0, so that runs against other
environments are not blocked; Ansible then reports that no vault secret matched
the encrypted file, and this script's hint on stderr says where to put it.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vault-id", required=True)
    env = parser.parse_args().vault_id
    if env not in {"staging", "production"}:
        print(f"vault-password-client: unknown vault id {env!r}", file=sys.stderr)
        return 1
    from_env = os.environ.get(f"WOPS_VAULT_PASSWORD_{env.upper()}")
    if from_env:
        print(from_env)
        return 0
    base = Path(
        os.environ.get("WOPS_VAULT_PASSWORD_DIR", Path.home() / ".config/warehouse-ops/vault")
    )
    path = base / env
    if not path.exists():
        return 0
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(
            f"vault-password-client: {path} is readable by others; run: chmod 600 {path}",
            file=sys.stderr,
        )
        return 1
    print(path.read_text(encoding="utf-8").strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
