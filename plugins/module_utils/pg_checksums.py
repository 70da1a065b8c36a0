# Copyright: warehouse-ops contributors
# Apache License 2.0
"""Pure helpers of the pg_table_checksums module (no database, no Ansible).

A restored copy proves itself only if the same query, run on the source and
on the copy at the same recovery point, gives the same answer. These helpers
build that query and compare the answers; the module runs them.
"""

from __future__ import annotations

import re
from typing import Any

# Row text depends on these session settings (dates, floats, bytea, money):
# pinned so that source and copy render every row identically.
SESSION_SETTINGS: dict[str, str] = {
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "lc_monetary": "C",
}

_QUALIFIED = re.compile(r'^(?:"((?:[^"]|"")+)"|([^".]+))\.(?:"((?:[^"]|"")+)"|([^".]+))$')


class ChecksumError(ValueError):
    """Input the module cannot work with (bad table name, malformed result)."""


def quote_ident(name: str) -> str:
    """Quote an identifier the way PostgreSQL's quote_ident does when quoting is needed."""
    if not name or "\x00" in name:
        raise ChecksumError(f"invalid identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


def split_qualified(name: str) -> tuple[str, str]:
    """``schema.table`` (either part may be double-quoted) -> (schema, table)."""
    match = _QUALIFIED.match(name.strip())
    if not match:
        raise ChecksumError(f"{name!r} is not a schema-qualified table name (schema.table)")
    schema = match.group(1).replace('""', '"') if match.group(1) else match.group(2)
    table = match.group(3).replace('""', '"') if match.group(3) else match.group(4)
    return schema, table


def table_key(schema: str, table: str) -> str:
    """Key of a table in the result: ``schema.table``, unquoted (stable across runs)."""
    return f"{schema}.{table}"


def checksum_sql(schema: str, table: str) -> str:
    """Row count and an order-independent checksum of every row's text.

    Each row's text is hashed (md5), the first 64 bits are read as a signed
    integer and summed as numeric: the sum does not depend on the physical
    order of rows (a restore may lay them out differently) but counts
    duplicates, which an XOR would cancel out.
    """
    relation = f"{quote_ident(schema)}.{quote_ident(table)}"
    # (r.*) is the whole row even when a column is called r.
    # Identifiers are quoted by quote_ident; there are no values to bind.
    select = ("SELECT count(*)::bigint, coalesce(sum(('x' || substr(md5((r.*)::text), 1, 16))"
              "::bit(64)::bigint::numeric), 0)::text")
    return f"{select} FROM {relation} AS r"


# Tables (and partitioned parents, whose rows include their partitions) in
# the given schemas; partitions themselves are covered by their parent.
TABLES_SQL = (
    "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
    "ORDER BY 1, 2"
)


def digest(total: str) -> str:
    """The numeric sum as 16 hex digits (modulo 2**64): short, and enough to compare."""
    try:
        value = int(total)
    except ValueError as exc:
        raise ChecksumError(f"checksum sum {total!r} is not an integer") from exc
    return f"{value % (1 << 64):016x}"


def select_tables(found: list[tuple[str, str]], include: list[str],
                  exclude: list[str]) -> list[tuple[str, str]]:
    """Filter the tables found in the schemas by the include/exclude lists."""
    wanted = {split_qualified(name) for name in include}
    unwanted = {split_qualified(name) for name in exclude}
    missing = sorted(table_key(*t) for t in wanted - set(found))
    if missing:
        raise ChecksumError(f"tables not found in the database: {', '.join(missing)}")
    chosen = [t for t in found if (not wanted or t in wanted) and t not in unwanted]
    return chosen


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> list[dict[str, Any]]:
    """Every difference between two results (``tables`` dicts), sorted by table.

    A table that is missing on one side, a different row count and a
    different checksum are each reported; an empty list means identical.
    """
    problems: list[dict[str, Any]] = []
    for name in sorted(set(expected) | set(actual)):
        want, got = expected.get(name), actual.get(name)
        if got is None:
            problems.append({"table": name, "problem": "missing", "expected": want,
                             "actual": None})
            continue
        if want is None:
            problems.append({"table": name, "problem": "unexpected", "expected": None,
                             "actual": got})
            continue
        try:
            rows_differ = int(want["rows"]) != int(got["rows"])
            sums_differ = str(want["checksum"]) != str(got["checksum"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ChecksumError(f"{name}: expected rows and checksum, got {want!r}") from exc
        if rows_differ:
            problems.append({"table": name, "problem": "row count", "expected": want,
                             "actual": got})
        elif sums_differ:
            problems.append({"table": name, "problem": "content", "expected": want,
                             "actual": got})
    return problems


def summary(problems: list[dict[str, Any]]) -> str:
    """One line per difference, for a failure message a person reads."""
    lines = []
    for p in problems:
        want, got = p["expected"] or {}, p["actual"] or {}
        lines.append(
            f"{p['table']}: {p['problem']} (expected {want.get('rows', '-')} rows "
            f"{want.get('checksum', '-')}, found {got.get('rows', '-')} rows "
            f"{got.get('checksum', '-')})"
        )
    return "; ".join(lines)
