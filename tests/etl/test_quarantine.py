"""Bad rows go to quarantine with their rule, file and line; the rest load."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import query, run_etl


def _inject(batch: Path) -> dict[int, str]:
    """Corrupt ~1% of lineitem lines in known ways; returns line number -> rule id."""
    path = batch / "lineitem.tbl"
    lines = path.read_text().splitlines(keepends=True)
    expected: dict[int, str] = {}
    corruptions = [
        (4, lambda f: f.__setitem__(4, "-3"), "domain.positive"),          # quantity
        (6, lambda f: f.__setitem__(6, "1.50"), "domain.range"),           # discount
        (10, lambda f: f.__setitem__(10, "1995-02-30"), "type.date"),      # impossible date
        (10, lambda f: f.__setitem__(10, "1776-07-04"), "domain.date_range"),
        (0, None, "ref.order"),                                            # unknown order
        (1, lambda f: f.__setitem__(1, "987654"), "ref.part"),             # unknown part
        (4, lambda f: f.__setitem__(4, "ten"), "type.decimal"),
        (14, lambda f: f.__setitem__(14, ""), "required"),                 # ship mode
        (8, lambda f: f.__setitem__(8, "X"), "domain.values"),             # return flag
    ]
    step = 97
    for n, i in enumerate(range(50, len(lines), step)):
        _, mutate, rule = corruptions[n % len(corruptions)]
        fields = lines[i].split("|")
        if mutate is None:
            fields[0] = str(90_000_000 + i)  # distinct, so not also a duplicate key
        else:
            mutate(fields)
        lines[i] = "|".join(fields)
        expected[i + 1] = rule
    # Duplicate business keys: a repeated line is rejected, the first one loads.
    for i in range(75, len(lines), 1500):
        lines.append(lines[i] if (i + 1) not in expected else lines[i + 1])
        expected[len(lines)] = "unique.business_key"
    path.write_text("".join(lines))
    return expected


def test_one_percent_bad_rows_are_quarantined(dsn: str, batch: Path) -> None:
    assert run_etl(dsn, "migrate").returncode == 0
    expected = _inject(batch)
    total = sum(1 for _ in (batch / "lineitem.tbl").open())
    assert 0.008 < len(expected) / total < 0.02
    res = run_etl(dsn, "load", str(batch))
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["status"] == "loaded"
    assert summary["tables"]["lineitem"] == {
        "read": total, "loaded": total - len(expected), "rejected": len(expected),
        "slow_path": True,
    }
    assert summary["rows_loaded"] + summary["rows_rejected"] == summary["rows_read"]
    assert 0 < summary["quality_score"] < 100
    rows = query(dsn, "SELECT line_no, rule_id, source_file, column_name, record"
                      " FROM warehouse.etl_rejects WHERE table_name = 'lineitem'")
    got = {r[0]: r[1] for r in rows}
    assert got == expected
    assert {r[2] for r in rows} == {"lineitem.tbl"}
    assert all(r[4] for r in rows)  # the offending record is kept
    facts = query(dsn, "SELECT count(*) FROM warehouse.fact_sales")[0][0]
    assert facts == total - len(expected)
    ledger = query(dsn, "SELECT rows_rejected, quality_score FROM warehouse.etl_runs")[0]
    assert ledger[0] == len(expected)


def test_rejects_over_threshold_load_nothing(dsn: str, batch: Path) -> None:
    assert run_etl(dsn, "migrate").returncode == 0
    expected = _inject(batch)
    res = run_etl(dsn, "load", str(batch), "--max-reject-ratio", "0.001")
    assert res.returncode == 3, res.stderr[-3000:]
    assert "threshold" in res.stderr
    for table in ("fact_sales", "dim_customer", "dim_product", "dim_supplier", "dim_date",
                  "product_supplier", "ref_nation"):
        assert query(dsn, f"SELECT count(*) FROM warehouse.{table}")[0][0] == 0, table
    run = query(dsn, "SELECT status, rows_rejected, error FROM warehouse.etl_runs")
    assert run[0][0] == "rejected"
    assert run[0][1] == len(expected)
    # The quarantine is kept so the rejection can be investigated.
    assert query(dsn, "SELECT count(*) FROM warehouse.etl_rejects")[0][0] == len(expected)
    # The environment variable threshold behaves the same way.
    res = run_etl(dsn, "load", str(batch), ETL_MAX_REJECT_RATIO="0.001")
    assert res.returncode == 3
    assert query(dsn, "SELECT count(*) FROM warehouse.fact_sales")[0][0] == 0


def test_dimension_rows_with_unknown_parents_are_rejected(dsn: str, batch: Path) -> None:
    assert run_etl(dsn, "migrate").returncode == 0
    path = batch / "customer.tbl"
    lines = path.read_text().splitlines(keepends=True)
    fields = lines[9].split("|")
    fields[3] = "77"  # no such nation
    lines[9] = "|".join(fields)
    path.write_text("".join(lines))
    res = run_etl(dsn, "load", str(batch))
    assert res.returncode == 0, res.stderr[-2000:]
    rows = query(dsn, "SELECT table_name, line_no, rule_id, column_name"
                      " FROM warehouse.etl_rejects ORDER BY table_name, line_no")
    # The customer is rejected, and so are the orders (and their line items)
    # that pointed at it: nothing dangling reaches the facts.
    assert rows[0][:4] == ("customer", 10, "ref.nation", "c_nationkey") or (
        ("customer", 10, "ref.nation", "c_nationkey") in [r[:4] for r in rows])
    tables = {r[0] for r in rows}
    assert tables <= {"customer", "orders", "lineitem"}
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["rows_loaded"] + summary["rows_rejected"] == summary["rows_read"]
    dangling = query(dsn, "SELECT count(*) FROM warehouse.fact_sales f WHERE NOT EXISTS"
                          " (SELECT 1 FROM warehouse.dim_customer c"
                          "  WHERE c.customer_key = f.customer_key)")
    assert dangling[0][0] == 0
