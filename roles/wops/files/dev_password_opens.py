#!/usr/bin/env python3
"""Report, for each vault file, its label and whether dev's password opens it.

    dev_password_opens.py <dev password file> <vault file>...

Prints one line per file, ``<label>\\t<opens: yes|no>\\t<path>``, and nothing of
any content. Run by the wops role outside dev, with the Python that runs
Ansible; the password is tried whatever the file's label. Exit 0 after
checking every file; 2 when a file cannot be read.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ansible.errors import AnsibleError
from ansible.parsing.vault import VaultLib, VaultSecret


def label_of(data: bytes) -> str:
    """The vault id in a file's header ($ANSIBLE_VAULT;1.2;AES256;<label>), or ''."""
    fields = data.split(b"\n", 1)[0].strip().split(b";")
    return fields[3].decode("utf-8", "replace") if len(fields) > 3 else ""


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    password = Path(argv[0]).read_bytes().strip()
    for name in argv[1:]:
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            print(f"cannot read {name}: {exc}", file=sys.stderr)
            return 2
        # Offered under the file's own label: vault_id_match cannot skip it.
        vault = VaultLib([(label_of(data) or "dev", VaultSecret(password))])
        try:
            vault.decrypt(data)
            opens = "yes"
        except AnsibleError:
            opens = "no"
        print(f"{label_of(data)}\t{opens}\t{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
