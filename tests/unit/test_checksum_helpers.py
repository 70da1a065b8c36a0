"""The pg_table_checksums helpers, their SQL run on a real PostgreSQL server."""

from __future__ import annotations

import pg_checksums as pc
import psycopg
import pytest

from testbed.pgserver import DevServer


def _checksum(server: DevServer, schema: str, table: str) -> tuple[int, str]:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for name, value in pc.SESSION_SETTINGS.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        row = conn.execute(pc.checksum_sql(schema, table)).fetchone()
    assert row is not None
    return int(row[0]), pc.digest(str(row[1]))


def test_checksum_ignores_physical_order_but_sees_content_and_duplicates(
        server: DevServer) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        # A column named like the query's row alias must not stand in for the row.
        conn.execute('CREATE SCHEMA "odd ""schema"""')
        conn.execute('CREATE TABLE "odd ""schema""".a (k int, v text, n numeric, r timestamptz)')
        conn.execute('CREATE TABLE "odd ""schema""".b (k int, v text, n numeric, r timestamptz)')
        rows = [(i, f"row {i}", i / 7, f"2024-01-{1 + i % 28:02d} 12:00+02") for i in range(500)]
        with conn.cursor() as cur:
            cur.executemany('INSERT INTO "odd ""schema""".a VALUES (%s, %s, %s, %s)', rows)
            cur.executemany('INSERT INTO "odd ""schema""".b VALUES (%s, %s, %s, %s)',
                            list(reversed(rows)))
        # Same rows, other order, other session time zone: same checksum.
        conn.execute("SET TimeZone = 'America/New_York'")
        a = _checksum(server, 'odd "schema"', "a")
        b = _checksum(server, 'odd "schema"', "b")
        assert a == b and a[0] == 500
        conn.execute('UPDATE "odd ""schema""".b SET v = v || \'.\' WHERE k = 42')
        changed = _checksum(server, 'odd "schema"', "b")
        assert changed[0] == 500 and changed[1] != a[1]
        # A duplicated row changes the sum (an XOR would cancel two copies).
        conn.execute('UPDATE "odd ""schema""".b SET v = \'row 42\' WHERE k = 42')
        conn.execute('INSERT INTO "odd ""schema""".a SELECT * FROM "odd ""schema""".a WHERE k = 1')
        conn.execute('INSERT INTO "odd ""schema""".a SELECT * FROM "odd ""schema""".a WHERE k = 1')
        conn.execute('DELETE FROM "odd ""schema""".b WHERE k = 1')
        assert _checksum(server, 'odd "schema"', "a")[1] != a[1]


def test_tables_sql_lists_partitioned_parents_not_partitions(server: DevServer) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA wh")
        conn.execute("CREATE TABLE wh.fact (d date, x int) PARTITION BY RANGE (d)")
        conn.execute("CREATE TABLE wh.fact_2024 PARTITION OF wh.fact "
                     "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')")
        conn.execute("CREATE TABLE wh.dim (k int primary key)")
        conn.execute("CREATE VIEW wh.v AS SELECT 1")
        conn.execute("INSERT INTO wh.fact VALUES ('2024-05-01', 1), ('2024-06-01', 2)")
        found = conn.execute(pc.TABLES_SQL, (["wh"],)).fetchall()
    assert found == [("wh", "dim"), ("wh", "fact")]
    assert _checksum(server, "wh", "fact")[0] == 2


def test_split_and_quote_identifiers() -> None:
    assert pc.split_qualified("warehouse.fact_sales") == ("warehouse", "fact_sales")
    assert pc.split_qualified('"we.ird"."ta""ble"') == ("we.ird", 'ta"ble')
    assert pc.quote_ident('a"b') == '"a""b"'
    for bad in ("fact_sales", "a.b.c", "", ".x"):
        with pytest.raises(pc.ChecksumError):
            pc.split_qualified(bad)
    with pytest.raises(pc.ChecksumError):
        pc.quote_ident("")


def test_select_tables_filters_and_names_missing_tables() -> None:
    found = [("warehouse", "dim_date"), ("warehouse", "fact_sales"), ("warehouse", "etl_ledger")]
    assert pc.select_tables(found, [], ["warehouse.etl_ledger"]) == found[:2]
    assert pc.select_tables(found, ["warehouse.fact_sales"], []) == [found[1]]
    with pytest.raises(pc.ChecksumError, match=r"warehouse\.nope"):
        pc.select_tables(found, ["warehouse.nope"], [])


def test_compare_reports_each_kind_of_difference() -> None:
    source = {"w.a": {"rows": 3, "checksum": "01"}, "w.b": {"rows": 2, "checksum": "02"},
              "w.c": {"rows": 1, "checksum": "03"}}
    copy = {"w.a": {"rows": 3, "checksum": "01"}, "w.b": {"rows": 2, "checksum": "ff"},
            "w.d": {"rows": 0, "checksum": "00"}}
    assert pc.compare(source, dict(source)) == []
    problems = pc.compare(source, copy)
    assert [(p["table"], p["problem"]) for p in problems] == [
        ("w.b", "content"), ("w.c", "missing"), ("w.d", "unexpected")]
    assert pc.compare({"w.a": {"rows": 3, "checksum": "01"}},
                      {"w.a": {"rows": 4, "checksum": "01"}})[0]["problem"] == "row count"
    text = pc.summary(problems)
    assert "w.b: content (expected 2 rows 02, found 2 rows ff)" in text
    with pytest.raises(pc.ChecksumError):
        pc.compare({"w.a": {"rows": 1}}, {"w.a": {"rows": 1, "checksum": "x"}})


def test_digest_is_the_sum_modulo_2_64() -> None:
    assert pc.digest("0") == "0000000000000000"
    assert pc.digest("-1") == "ffffffffffffffff"
    assert pc.digest(str((1 << 64) + 5)) == "0000000000000005"
    with pytest.raises(pc.ChecksumError):
        pc.digest("1.5")
