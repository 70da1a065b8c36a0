"""Loading batches into a real PostgreSQL: clean, repeated, incremental, bad rows."""

from __future__ import annotations

import gzip
import json
import shutil
from decimal import Decimal
from pathlib import Path

import psycopg
from conftest import file_totals, query, run_etl, warehouse_fingerprint
from warehouse_etl.generate import generate


def _migrate(dsn: str) -> None:
    res = run_etl(dsn, "migrate", "--json")
    assert res.returncode == 0, res.stderr


def _load(dsn: str, batch: Path, *extra: str, expect: int = 0) -> dict:
    res = run_etl(dsn, "load", str(batch), *extra)
    assert res.returncode == expect, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_clean_load_matches_input_counts_and_sums(dsn: str, batch: Path) -> None:
    _migrate(dsn)
    summary = _load(dsn, batch)
    totals = file_totals(batch / "lineitem.tbl")
    assert summary["status"] == "loaded"
    assert summary["rows_rejected"] == 0
    assert summary["quality_score"] == 100.0
    assert summary["facts_inserted"] == totals["rows"]
    count, qty, price = query(
        dsn, "SELECT count(*), sum(quantity), sum(extended_price) FROM warehouse.fact_sales"
    )[0]
    assert count == totals["rows"]
    assert qty == totals["quantity"]
    assert price == totals["extended_price"]
    for table, file in [("dim_customer", "customer"), ("dim_product", "part"),
                        ("dim_supplier", "supplier"), ("product_supplier", "partsupp")]:
        lines = sum(1 for _ in (batch / f"{file}.tbl").open())
        assert query(dsn, f"SELECT count(*) FROM warehouse.{table}")[0][0] == lines
    # Every order's date became its lines' sale_date, and every quarter is a partition.
    orders = {int(f[0]): f[4] for f in (ln.split("|") for ln in (batch / "orders.tbl").open())}
    mismatches = query(
        dsn, "SELECT orderkey, sale_date::text FROM warehouse.fact_sales"
        " GROUP BY orderkey, sale_date")
    assert all(orders[k] == d for k, d in mismatches)
    parts = query(dsn, "SELECT count(*) FROM pg_inherits"
                       " WHERE inhparent = 'warehouse.fact_sales'::regclass")[0][0]
    assert parts == len({(d[:4], (int(d[5:7]) - 1) // 3) for d in orders.values()})
    # Geography is folded into the dimensions.
    assert query(dsn, "SELECT count(*) FROM warehouse.dim_customer"
                      " WHERE region_name IS NULL OR nation_name IS NULL")[0][0] == 0
    run = query(dsn, "SELECT status, rows_read, rows_loaded, rows_rejected, quality_score,"
                     " files ? 'lineitem.tbl', timings ? 'stage' FROM warehouse.etl_runs")
    assert run == [("loaded", summary["rows_read"], summary["rows_read"], 0,
                    Decimal("100.00"), True, True)]
    leftovers = query(dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'warehouse_staging'")
    assert leftovers[0][0] == 0


def test_same_batch_twice_changes_nothing(dsn: str, batch: Path) -> None:
    _migrate(dsn)
    _load(dsn, batch)
    before = warehouse_fingerprint(dsn)
    runs_before = query(dsn, "SELECT count(*) FROM warehouse.etl_runs")[0][0]
    again = _load(dsn, batch)
    assert again["status"] == "already_loaded"
    assert warehouse_fingerprint(dsn) == before
    assert query(dsn, "SELECT count(*) FROM warehouse.etl_runs")[0][0] == runs_before
    # The same rows under another batch id: business keys make it a no-op too.
    copy = batch.parent / "batch_0001_again"
    shutil.copytree(batch, copy)
    other = _load(dsn, copy)
    assert other["status"] == "loaded"
    assert other["facts_inserted"] == 0
    assert other["facts_already_present"] == before["fact_sales"][0]
    assert all(v == 0 for v in other["dimension_rows_changed"].values())
    assert warehouse_fingerprint(dsn) == before


def test_incremental_batches_add_exactly_their_rows(
    dsn: str, pg_server, tpch: Path, tmp_path: Path
) -> None:
    _migrate(dsn)
    total = 0
    for k in (1, 2, 3):
        out = tmp_path / f"incr_{k:04d}"
        generate(0.01, out, "tbl", parts=3, part=k)
        lines = file_totals(out / "lineitem.tbl")["rows"]
        summary = _load(dsn, out)
        assert summary["facts_inserted"] == lines
        assert summary["rows_rejected"] == 0
        total += lines
        assert query(dsn, "SELECT count(*) FROM warehouse.fact_sales")[0][0] == total
    # Three parts together equal the whole batch loaded in one go elsewhere.
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE incr_reference")
    ref = pg_server.dsn("incr_reference")
    try:
        _migrate(ref)
        _load(ref, tpch)
        a, b = warehouse_fingerprint(dsn), warehouse_fingerprint(ref)
        assert a["fact_sales"] == b["fact_sales"]
        assert a["sums"] == b["sums"]
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute("DROP DATABASE incr_reference WITH (FORCE)")


def test_line_items_of_an_order_loaded_earlier_are_accepted(
    dsn: str, batch: Path, tmp_path: Path
) -> None:
    """A later batch may carry line items only: orders come from the warehouse."""
    _migrate(dsn)
    lines = (batch / "lineitem.tbl").read_text().splitlines(keepends=True)
    (batch / "lineitem.tbl").write_text("".join(lines[:-100]))
    _load(dsn, batch)
    later = tmp_path / "batch_0002"
    later.mkdir()
    for name in ("region", "nation", "supplier", "customer", "part", "partsupp", "orders"):
        (later / f"{name}.tbl").write_text("")
    (later / "lineitem.tbl").write_text("".join(lines[-100:]))
    summary = _load(dsn, later)
    assert summary["facts_inserted"] == 100
    assert summary["rows_rejected"] == 0
    assert query(dsn, "SELECT count(*) FROM warehouse.fact_sales")[0][0] == len(lines)


def test_csv_and_gzip_inputs_load_the_same(dsn: str, pg_server, tmp_path: Path,
                                           tpch: Path) -> None:
    _migrate(dsn)
    csv_dir = tmp_path / "csv_batch"
    generate(0.01, csv_dir, "csv")
    for f in list(csv_dir.glob("*.csv"))[:4]:
        with f.open("rb") as src, gzip.open(f"{f}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        f.unlink()
    summary = _load(dsn, csv_dir)
    assert summary["rows_rejected"] == 0
    assert summary["facts_inserted"] == file_totals(tpch / "lineitem.tbl")["rows"]
