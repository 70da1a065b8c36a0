"""Migrations, the Pushgateway push, and the small CLI commands."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import query, run_etl
from warehouse_etl.cli import ProgressBar

from testbed.pgserver import free_port


def test_migrations_are_idempotent_and_report_json(dsn: str) -> None:
    first = run_etl(dsn, "migrate", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"applied": ["0001", "0002"], "current": "0002"}
    second = run_etl(dsn, "migrate", "--json")
    assert json.loads(second.stdout) == {"applied": [], "current": "0002"}
    rows = query(dsn, "SELECT version, name, length(checksum) FROM warehouse.schema_migrations"
                      " ORDER BY version")
    assert rows == [("0001", "star_schema", 64), ("0002", "etl_ledger", 64)]
    # The partitioned fact table carries the indexes the brief asks for.
    idx = {r[0] for r in query(dsn, "SELECT indexname FROM pg_indexes"
                                    " WHERE schemaname = 'warehouse' AND tablename = 'fact_sales'")}
    assert {"fact_sales_business_key", "fact_sales_sale_date", "fact_sales_customer"} <= idx


def test_changed_migration_is_an_error(dsn: str) -> None:
    assert run_etl(dsn, "migrate").returncode == 0
    query(dsn, "UPDATE warehouse.schema_migrations SET checksum = 'x' WHERE version = '0001'"
               " RETURNING 1")
    res = run_etl(dsn, "migrate", "--json")
    assert res.returncode == 5
    assert "0001_star_schema.sql was changed" in res.stderr


def test_schema_name_is_configurable(dsn: str, batch: Path) -> None:
    res = run_etl(dsn, "migrate", "--json", ETL_SCHEMA="sales_dw")
    assert res.returncode == 0, res.stderr
    res = run_etl(dsn, "load", str(batch), ETL_SCHEMA="sales_dw")
    assert res.returncode == 0, res.stderr[-2000:]
    assert query(dsn, "SELECT count(*) > 0 FROM sales_dw.fact_sales")[0][0]
    assert query(dsn, "SELECT to_regclass('warehouse.fact_sales')")[0][0] is None


class _Capture(BaseHTTPRequestHandler):
    bodies: ClassVar[list[tuple[str, str, bytes]]] = []

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.bodies.append((self.command, self.path, self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT = _handle

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """A tiny real HTTP server standing in for the Pushgateway."""
    _Capture.bodies = []
    server = HTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Capture.bodies
    server.shutdown()
    server.server_close()


def test_metrics_are_pushed(dsn: str, batch: Path, gateway) -> None:
    url, bodies = gateway
    assert run_etl(dsn, "migrate").returncode == 0
    res = run_etl(dsn, "load", str(batch), ETL_PUSHGATEWAY_URL=url)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(bodies) == 1
    method, path, body = bodies[0]
    text = body.decode()
    assert method == "POST"
    assert path == "/metrics/job/warehouse_etl"
    lines = (batch / "lineitem.tbl").read_text().count("\n")
    assert f'etl_records_read_total{{table="lineitem"}} {float(lines)}' in text
    assert f'etl_records_loaded_total{{table="lineitem"}} {float(lines)}' in text
    assert 'etl_records_rejected_total{table="lineitem"} 0.0' in text
    assert "etl_quality_score 100.0" in text
    assert "etl_batch_duration_seconds " in text
    assert "etl_last_success_timestamp_seconds " in text
    assert 'etl_errors_total{kind="none"} 0.0' in text

    # A failed batch pushes its error, and leaves the last success time alone.
    (batch / "region.tbl").unlink()
    copy = batch.parent / "batch_missing"
    batch.rename(copy)
    res = run_etl(dsn, "load", str(copy), ETL_PUSHGATEWAY_URL=url)
    assert res.returncode == 4
    text = bodies[-1][2].decode()
    assert 'etl_errors_total{kind="input"} 1.0' in text
    assert "etl_last_success_timestamp_seconds" not in text


def test_unreachable_gateway_does_not_fail_the_load(dsn: str, batch: Path) -> None:
    assert run_etl(dsn, "migrate").returncode == 0
    res = run_etl(dsn, "load", str(batch), ETL_PUSHGATEWAY_URL=f"http://127.0.0.1:{free_port()}")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "pushgateway push failed" in res.stderr


def test_logs_are_json_and_never_show_the_password(dsn: str, batch: Path) -> None:
    assert run_etl(dsn, "migrate").returncode == 0
    res = run_etl(dsn + " password=hunter2", "load", str(batch))
    assert res.returncode == 0, res.stderr[-2000:]
    for line in res.stderr.strip().splitlines():
        record = json.loads(line)
        assert {"ts", "level", "event"} <= set(record)
    assert "hunter2" not in res.stderr + res.stdout


def test_status_lists_recent_batches(dsn: str, batch: Path) -> None:
    assert run_etl(dsn, "migrate").returncode == 0
    assert run_etl(dsn, "load", str(batch)).returncode == 0
    res = run_etl(dsn, "status", "--json", "--limit", "5")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert rows[0]["batch_id"] == "batch_0001"
    assert rows[0]["status"] == "loaded"
    assert float(rows[0]["quality_score"]) == 100.0
    table = run_etl(dsn, "status")
    assert "batch_0001" in table.stdout and "loaded" in table.stdout


def test_generate_wraps_tpchgen(tmp_path: Path, dsn: str) -> None:
    res = run_etl(dsn, "generate", "--scale-factor", "0.001", "--output", str(tmp_path / "g"),
                  "--format", "csv", "--parts", "2", "--part", "2")
    assert res.returncode == 0, res.stderr
    files = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert files == sorted(f"{t}.csv" for t in ("customer", "lineitem", "nation", "orders",
                                                 "part", "partsupp", "region", "supplier"))
    assert run_etl(dsn, "generate", "--scale-factor", "0.001", "--output", str(tmp_path / "h"),
                   "--parts", "2").returncode == 2


def test_progress_bar_draws_on_a_stream() -> None:
    out = io.StringIO()
    bar = ProgressBar(out)
    bar("stage", 50_000_000, 100_000_000)
    bar("stage", 100_000_000, 100_000_000)
    bar.close()
    text = out.getvalue()
    assert "stage" in text and "50.0%" in text and "100.0%" in text
    assert text.endswith("\n")
