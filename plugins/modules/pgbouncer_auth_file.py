#!/usr/bin/python
# Copyright: warehouse-ops contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pgbouncer_auth_file
short_description: Manage pgBouncer's auth_file with PostgreSQL's own SCRAM verifiers
description:
  - Writes the users of a pgBouncer C(auth_file) idempotently.
  - pgBouncer can pass SCRAM-SHA-256 authentication through to PostgreSQL only
    when its secret is byte-identical to the verifier in C(pg_authid). The module
    therefore copies that verifier (O(from_pg_authid)), takes one you read
    yourself (O(users[].verifier)), or recomputes it from a password with the
    salt and iteration count PostgreSQL holds (O(users[].password) together with
    O(users[].verifier)); it never makes up a salt.
  - No password or secret is ever written to the log, the result or the diff.
    The diff lists user names with redacted secrets.
  - Supports check mode and diff mode.
  - The login options (O(login_db), O(login_port) and the rest) are used only
    with O(from_pg_authid=true); they are those of every project module that
    connects to PostgreSQL.
options:
  path:
    description: Path of the auth_file.
    type: path
    required: true
  users:
    description: Users that must be in the file.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Role name, as in PostgreSQL.
        type: str
        required: true
      verifier:
        description:
          - The SCRAM-SHA-256 verifier of the role as stored in C(pg_authid.rolpassword).
          - Not needed with O(from_pg_authid=true).
        type: str
      password:
        description:
          - The role's password. Only used to check or recompute the verifier with
            PostgreSQL's salt and iteration count; never written anywhere.
        type: str
  from_pg_authid:
    description:
      - Read each user's verifier from C(pg_authid) on the PostgreSQL server
        given by the login options (needs a superuser, e.g. the postgres OS
        user over the local socket).
    type: bool
    default: false
  exclusive:
    description: Remove users that are in the file but not in O(users).
    type: bool
    default: true
  owner:
    description: Owner of the file.
    type: str
  group:
    description: Group of the file.
    type: str
  mode:
    description: Mode of the file.
    type: raw
    default: "0640"
  login_db:
    default: postgres
extends_documentation_fragment:
  - pg_login
requirements:
  - psycopg2 (only with O(from_pg_authid=true))
author: warehouse-ops
"""

EXAMPLES = r"""
- name: Copy the application roles' verifiers from PostgreSQL into pgBouncer
  pgbouncer_auth_file:
    path: /etc/pgbouncer/userlist.txt
    from_pg_authid: true
    users:
      - name: etl
      - name: reporting
    owner: postgres
    group: postgres
  become: true
  become_user: postgres

- name: Use verifiers read on another host (pgBouncer and PostgreSQL apart)
  pgbouncer_auth_file:
    path: /etc/pgbouncer/userlist.txt
    users: "{{ verifiers_from_primary }}"
  no_log: true
"""

RETURN = r"""
users:
  description: User names now in the file, sorted.
  returned: always
  type: list
  elements: str
  sample: [etl, reporting]
added:
  description: Users added.
  returned: always
  type: list
  elements: str
updated:
  description: Users whose secret changed.
  returned: always
  type: list
  elements: str
removed:
  description: Users removed (O(exclusive=true) only).
  returned: always
  type: list
  elements: str
"""

import os
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pg_connect import connect, connection_argument_spec, import_driver
from ansible.module_utils.pgbouncer_auth import (
    AuthFileError,
    check_name,
    parse_auth_file,
    parse_verifier,
    redacted_listing,
    render_auth_file,
    scram_verifier,
    verifier_matches,
)


def _read_pg_authid(module: AnsibleModule, names: list[str]) -> dict[str, str | None]:
    psycopg2 = import_driver(module, "from_pg_authid")
    conn = connect(module, psycopg2, "pgbouncer_auth_file")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolname, rolpassword FROM pg_catalog.pg_authid "
                        "WHERE rolname = ANY(%s)", (names,))
            found = dict(cur.fetchall())
    except psycopg2.Error as exc:
        module.fail_json(msg=f"cannot read pg_authid (a superuser is needed): {str(exc).strip()}")
    finally:
        conn.close()
    # Absent roles stay absent; a role without a password maps to None.
    return {name: found[name] for name in names if name in found}


def _desired(module: AnsibleModule) -> dict[str, str]:
    users = module.params["users"]
    names = [u["name"] for u in users]
    for name in names:
        try:
            check_name(name)
        except AuthFileError as exc:
            module.fail_json(msg=f"users: {exc}")
    if len(set(names)) != len(names):
        module.fail_json(msg="users: a name is listed twice")
    from_db: dict[str, str | None] = {}
    if module.params["from_pg_authid"]:
        from_db = _read_pg_authid(module, names)
    desired: dict[str, str] = {}
    for user in users:
        name = user["name"]
        verifier = user.get("verifier")
        if module.params["from_pg_authid"]:
            if name not in from_db:
                module.fail_json(msg=f"users: role {name!r} does not exist in PostgreSQL; "
                                     "create it first or remove it from the list")
            verifier = from_db[name]
            if verifier is None:
                module.fail_json(msg=f"users: role {name!r} has no password in PostgreSQL; "
                                     "set one (password_encryption = scram-sha-256)")
        if not verifier:
            module.fail_json(msg=f"users: {name!r} needs a verifier (or from_pg_authid: true)")
        try:
            iterations, salt, _stored, _server = parse_verifier(verifier)
        except AuthFileError as exc:
            module.fail_json(msg=f"users: {name!r}: {exc}; pgBouncer needs the role's "
                                 "scram-sha-256 verifier (re-set the password with "
                                 "password_encryption = scram-sha-256)")
        password = user.get("password")
        if password is not None and not verifier_matches(password, verifier):
            # The password given is not the one PostgreSQL holds: say so rather
            # than write a secret that would fail at login time.
            module.fail_json(msg=f"users: the password given for {name!r} does not match its "
                                 "verifier in PostgreSQL; set the role's password first")
        desired[name] = scram_verifier(password, salt, iterations) if password else verifier
    return desired


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "users": {"type": "list", "elements": "dict", "required": True, "options": {
                "name": {"type": "str", "required": True},
                "verifier": {"type": "str", "no_log": True},
                "password": {"type": "str", "no_log": True},
            }},
            "from_pg_authid": {"type": "bool", "default": False},
            "exclusive": {"type": "bool", "default": True},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "mode": {"type": "raw", "default": "0640"},
            **connection_argument_spec("postgres"),
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    desired = _desired(module)

    current: dict[str, str] = {}
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as handle:
                current = parse_auth_file(handle.read())
        except (OSError, AuthFileError) as exc:
            module.fail_json(msg=f"cannot read {path}: {exc}")

    result_users = dict(desired)
    if not module.params["exclusive"]:
        result_users = {**current, **desired}
    added = sorted(set(desired) - set(current))
    updated = sorted(n for n in desired if n in current and current[n] != desired[n])
    removed = sorted(set(current) - set(result_users))
    content_changed = bool(added or updated or removed) or not os.path.exists(path)
    if os.path.exists(path) and not content_changed:
        with open(path, encoding="utf-8") as handle:
            content_changed = handle.read() != render_auth_file(result_users)

    result: dict[str, Any] = {
        "changed": content_changed, "users": sorted(result_users),
        "added": added, "updated": updated, "removed": removed,
        "diff": {"before": redacted_listing(current), "after": redacted_listing(result_users),
                 "before_header": path, "after_header": path},
    }
    if content_changed and not module.check_mode:
        directory = os.path.dirname(path) or "."
        fd, tmp = tempfile.mkstemp(prefix=".auth_file.", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(render_auth_file(result_users))
            module.atomic_move(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    file_args = module.load_file_common_arguments(
        {"path": path, "owner": module.params["owner"], "group": module.params["group"],
         "mode": module.params["mode"]})
    if os.path.exists(path) or not module.check_mode:
        result["changed"] = module.set_fs_attributes_if_different(
            file_args, result["changed"], diff=None) or result["changed"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
