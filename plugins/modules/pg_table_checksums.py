#!/usr/bin/python
# Copyright: warehouse-ops contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_table_checksums
short_description: Row counts and content checksums of PostgreSQL tables at one snapshot
description:
  - Computes, for every table of the given schemas, its row count and an
    order-independent checksum of the text of every row, all inside one
    C(REPEATABLE READ) read-only snapshot, so the numbers describe one point
    in the database's history.
  - Run on a source and on a restored copy at the same recovery point, the
    results must be identical; pass the source's result as O(expected) and
    the module reports (or fails on) every difference.
  - With O(consistent_point=true) the tables are briefly locked in C(SHARE)
    mode (writers wait, readers do not) while the snapshot is taken, so no
    write to them is in flight; the returned RV(snapshot_time) is then a
    recovery target at which a point-in-time restore holds exactly the
    checksummed rows. The lock is released before the checksums are computed.
  - Read-only (it never changes the database); check mode runs the same queries.
  - O(login_user) needs SELECT on the tables (and LOCK for O(consistent_point));
    the postgres superuser over the unix socket is simplest.
  - The login options (O(login_db), O(login_port) and the rest) are those of
    every project module that connects to PostgreSQL.
options:
  schemas:
    description: Schemas whose tables (and partitioned parents) are checksummed.
    type: list
    elements: str
    default: [warehouse]
  tables:
    description: Only these tables (C(schema.table)); empty means every table of O(schemas).
    type: list
    elements: str
    default: []
  exclude_tables:
    description: Tables (C(schema.table)) to leave out.
    type: list
    elements: str
    default: []
  consistent_point:
    description:
      - Lock the tables in C(SHARE) mode while the snapshot is taken, so that
        RV(snapshot_time) separates committed writes cleanly (see description).
      - Not possible on a server in recovery (nothing writes there anyway).
    type: bool
    default: false
  lock_timeout:
    description: How long to wait for the locks of O(consistent_point) (PostgreSQL interval).
    type: str
    default: 30s
  expected:
    description:
      - A previous result's RV(tables) (for example the source's). Differences
        are returned in RV(mismatches).
    type: dict
  fail_on_mismatch:
    description: Fail when O(expected) is given and any table differs.
    type: bool
    default: false
  login_db:
    default: warehouse
extends_documentation_fragment:
  - pg_login
requirements:
  - psycopg2
author: warehouse-ops
"""

EXAMPLES = r"""
- name: Checksum the warehouse on the primary at a point a restore can target
  pg_table_checksums:
    login_db: warehouse
    schemas: [warehouse]
    consistent_point: true
  become: true
  become_user: postgres
  register: source

- name: Compare a restored copy with the source
  pg_table_checksums:
    login_port: 5433
    expected: "{{ source.tables }}"
    fail_on_mismatch: true
  become: true
  become_user: postgres
"""

RETURN = r"""
tables:
  description: Per table (C(schema.table)) its row count and checksum.
  returned: always
  type: dict
  sample: {"warehouse.fact_sales": {"rows": 60175, "checksum": "8c1f0a9e3b7d2c41"}}
total_rows:
  description: Sum of the row counts.
  returned: always
  type: int
snapshot_time:
  description: Server clock (UTC, ISO 8601) when the snapshot was taken.
  returned: always
  type: str
  sample: "2026-11-26T03:07:05.080121+00:00"
snapshot_lsn:
  description: WAL position at the snapshot (the replay position on a server in recovery).
  returned: always
  type: str
in_recovery:
  description: Whether the server was in recovery.
  returned: always
  type: bool
server_version:
  description: PostgreSQL server_version_num.
  returned: always
  type: int
mismatches:
  description:
    - Differences from O(expected), one entry per table.
    - Empty when identical or when nothing was compared.
  returned: always
  type: list
  elements: dict
matches:
  description: True when O(expected) was given and every table is identical.
  returned: always
  type: bool
elapsed_seconds:
  description: Time the checksums took.
  returned: always
  type: float
"""

import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pg_checksums import (
    SESSION_SETTINGS,
    TABLES_SQL,
    ChecksumError,
    checksum_sql,
    compare,
    digest,
    quote_ident,
    select_tables,
    summary,
    table_key,
)
from ansible.module_utils.pg_connect import connect, connection_argument_spec, import_driver


def _connect(module: AnsibleModule, psycopg2: Any) -> Any:
    return connect(module, psycopg2, "pg_table_checksums")


def _lock_tables(module: AnsibleModule, psycopg2: Any,
                 chosen: list[tuple[str, str]]) -> Any:
    """Hold SHARE locks so that no write to the tables is in flight."""
    locker = _connect(module, psycopg2)
    with locker.cursor() as cur:
        cur.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)",
                    (module.params["lock_timeout"],))
        relations = ", ".join(f"{quote_ident(s)}.{quote_ident(t)}" for s, t in chosen)
        try:
            cur.execute(f"LOCK TABLE {relations} IN SHARE MODE")
        except psycopg2.Error as exc:
            locker.close()
            module.fail_json(msg="could not lock the tables within "
                                 f"{module.params['lock_timeout']} for a consistent point: "
                                 f"{str(exc).strip()}")
    return locker


def _checksums(module: AnsibleModule, psycopg2: Any) -> dict[str, Any]:
    """Read the tables' checksums in one snapshot; the result without comparison."""
    p = module.params
    snap = _connect(module, psycopg2)
    locker = None
    try:
        snap.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with snap.cursor() as cur:
            cur.execute("SELECT pg_catalog.pg_is_in_recovery(), "
                        "pg_catalog.current_setting('server_version_num')::int")
            in_recovery, version = cur.fetchone()
            cur.execute(TABLES_SQL, (p["schemas"],))
            found = [(row[0], row[1]) for row in cur.fetchall()]
        # The catalog reads above ran in a transaction of their own: the
        # snapshot of the data is the next transaction's.
        snap.rollback()
        if p["consistent_point"] and in_recovery:
            module.fail_json(msg="consistent_point needs a server that is not in recovery "
                                 "(a standby has no writers to hold off)")
        try:
            chosen = select_tables(found, p["tables"], p["exclude_tables"])
        except ChecksumError as exc:
            module.fail_json(msg=str(exc))
        if p["consistent_point"] and chosen:
            locker = _lock_tables(module, psycopg2, chosen)
        with snap.cursor() as cur:
            # The first statement fixes the transaction's snapshot.
            cur.execute(
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), "
                "CASE WHEN pg_catalog.pg_is_in_recovery() "
                "THEN pg_catalog.pg_last_wal_replay_lsn() "
                "ELSE pg_catalog.pg_current_wal_lsn() END::text"
            )
            snapshot_time, snapshot_lsn = cur.fetchone()
            if locker is not None:
                # Writers may go on: whatever they commit now is after snapshot_time.
                locker.rollback()
                locker.close()
                locker = None
            for name, value in SESSION_SETTINGS.items():
                cur.execute("SELECT pg_catalog.set_config(%s, %s, true)", (name, value))
            tables: dict[str, dict[str, Any]] = {}
            for schema, table in chosen:
                cur.execute(checksum_sql(schema, table))
                rows, total = cur.fetchone()
                tables[table_key(schema, table)] = {"rows": int(rows), "checksum": digest(total)}
        snap.rollback()
    except psycopg2.Error as exc:
        module.fail_json(msg=f"checksum query failed: {str(exc).strip()}")
    finally:
        if locker is not None:
            locker.close()
        snap.close()
    return {
        "changed": False,
        "tables": tables,
        "total_rows": sum(t["rows"] for t in tables.values()),
        "snapshot_time": snapshot_time,
        "snapshot_lsn": snapshot_lsn,
        "in_recovery": bool(in_recovery),
        "server_version": int(version),
        "mismatches": [],
        "matches": False,
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "schemas": {"type": "list", "elements": "str", "default": ["warehouse"]},
            "tables": {"type": "list", "elements": "str", "default": []},
            "exclude_tables": {"type": "list", "elements": "str", "default": []},
            "consistent_point": {"type": "bool", "default": False},
            "lock_timeout": {"type": "str", "default": "30s"},
            "expected": {"type": "dict"},
            "fail_on_mismatch": {"type": "bool", "default": False},
            **connection_argument_spec("warehouse"),
        },
        supports_check_mode=True,
    )
    psycopg2 = import_driver(module, "pg_table_checksums")
    started = time.monotonic()
    result = _checksums(module, psycopg2)
    result["elapsed_seconds"] = round(time.monotonic() - started, 3)
    expected = module.params["expected"]
    if expected is not None:
        try:
            result["mismatches"] = compare(expected, result["tables"])
        except ChecksumError as exc:
            module.fail_json(msg=f"expected: {exc}")
        result["matches"] = not result["mismatches"]
        if module.params["fail_on_mismatch"] and result["mismatches"]:
            module.fail_json(msg="tables differ from the expected result: "
                                 + summary(result["mismatches"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
