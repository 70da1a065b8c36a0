"""A loader killed with SIGKILL, and inputs or settings that are simply wrong."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import etl_env, query, run_etl, warehouse_fingerprint
from warehouse_etl.generate import generate

from testbed.pgserver import free_port

# Where to kill: a COPY of the staging phase, or a statement inside the batch
# transaction that has already written to the warehouse (it holds an xid).
KILL_POINTS = {
    "staging_copy": "a.query LIKE 'COPY %'",
    "batch_transaction": "a.application_name LIKE '% main' AND a.backend_xid IS NOT NULL"
                         " AND a.query NOT LIKE 'COPY %'",
}


@pytest.fixture(scope="module")
def big_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Big enough (SF 0.03) that the loader is observably mid-batch for a while."""
    out = tmp_path_factory.mktemp("big") / "batch_big"
    generate(0.03, out, "tbl")
    return out


@pytest.fixture(scope="module")
def clean_fingerprint(pg_server, big_batch: Path) -> dict:
    """The warehouse after an uninterrupted load of the same batch, in its own database."""
    clean = _new_db(pg_server)
    assert run_etl(clean, "migrate").returncode == 0
    assert run_etl(clean, "load", str(big_batch)).returncode == 0
    return warehouse_fingerprint(clean)


def _new_db(pg_server) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_server.dsn(name)


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_mid_batch_then_rerun_equals_clean_load(
    dsn: str, big_batch: Path, clean_fingerprint: dict, point: str
) -> None:
    assert run_etl(dsn, "migrate").returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "warehouse_etl.cli", "load", str(big_batch)],
        env=etl_env(dsn), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    caught = None
    deadline = time.monotonic() + 120
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline and proc.poll() is None:
            caught = conn.execute(
                "SELECT a.pid, a.query FROM pg_stat_activity a"
                " WHERE a.application_name LIKE 'warehouse_etl run %%'"
                f" AND a.state = 'active' AND {KILL_POINTS[point]} LIMIT 1"
            ).fetchone()
            if caught:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait(timeout=30)
        assert caught is not None, "never saw the loader mid-batch"
        assert proc.returncode == -signal.SIGKILL
        # The server notices the dead client and rolls the batch back.
        deadline = time.monotonic() + 60
        while conn.execute("SELECT count(*) FROM pg_stat_activity"
                           " WHERE application_name LIKE 'warehouse_etl run %%'"
                           ).fetchone()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert query(dsn, "SELECT count(*) FROM warehouse.fact_sales")[0][0] == 0
    assert query(dsn, "SELECT status FROM warehouse.etl_runs") == [("running",)]

    res = run_etl(dsn, "load", str(big_batch))
    assert res.returncode == 0, res.stderr[-3000:]
    assert query(dsn, "SELECT status FROM warehouse.etl_runs ORDER BY run_id") == [
        ("abandoned",), ("loaded",)]
    assert query(dsn, "SELECT count(*) FROM pg_tables"
                      " WHERE schemaname = 'warehouse_staging'")[0][0] == 0

    assert warehouse_fingerprint(dsn) == clean_fingerprint


def _summary(res: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(res.stdout.strip().splitlines()[-1])


def _assert_failed_and_unchanged(dsn: str, res: subprocess.CompletedProcess[str],
                                 code: int, needle: str) -> None:
    assert res.returncode == code, (res.returncode, res.stderr[-2000:])
    assert needle in res.stderr, res.stderr[-2000:]
    assert _summary(res)["status"] == "failed"
    assert query(dsn, "SELECT count(*) FROM warehouse.fact_sales")[0][0] == 0
    assert query(dsn, "SELECT count(*) FROM warehouse.dim_customer")[0][0] == 0
    runs = query(dsn, "SELECT status, error_kind, error FROM warehouse.etl_runs")
    assert runs[-1][0] == "failed"
    assert runs[-1][1] == "input"
    assert needle in runs[-1][2]


def test_missing_file(dsn: str, batch: Path) -> None:
    assert run_etl(dsn, "migrate").returncode == 0
    (batch / "partsupp.tbl").unlink()
    res = run_etl(dsn, "load", str(batch))
    _assert_failed_and_unchanged(dsn, res, 4, "partsupp")


def test_wrong_column_count_names_file_and_line(dsn: str, batch: Path) -> None:
    assert run_etl(dsn, "migrate").returncode == 0
    path = batch / "orders.tbl"
    lines = path.read_text().splitlines(keepends=True)
    lines[41] = lines[41].replace("|", "|extra|", 1)
    path.write_text("".join(lines))
    res = run_etl(dsn, "load", str(batch))
    _assert_failed_and_unchanged(dsn, res, 4, "orders.tbl:42")


def test_missing_column_names_file_and_line(dsn: str, batch: Path) -> None:
    assert run_etl(dsn, "migrate").returncode == 0
    path = batch / "lineitem.tbl"
    lines = path.read_text().splitlines(keepends=True)
    lines[1000] = lines[1000].split("|", 3)[3]
    path.write_text("".join(lines))
    res = run_etl(dsn, "load", str(batch))
    _assert_failed_and_unchanged(dsn, res, 4, "lineitem.tbl:1001")


def test_undecodable_bytes_name_file_and_line(dsn: str, batch: Path) -> None:
    assert run_etl(dsn, "migrate").returncode == 0
    path = batch / "customer.tbl"
    data = path.read_bytes().split(b"\n")
    data[99] = data[99].replace(b"Customer", b"Cust\xff\xfemer", 1)
    path.write_bytes(b"\n".join(data))
    res = run_etl(dsn, "load", str(batch))
    _assert_failed_and_unchanged(dsn, res, 4, "customer.tbl:100")


def test_corrupt_gzip(dsn: str, batch: Path) -> None:
    assert run_etl(dsn, "migrate").returncode == 0
    raw = (batch / "region.tbl").read_bytes()
    (batch / "region.tbl").unlink()
    (batch / "region.tbl.gz").write_bytes(gzip.compress(raw)[:30])
    res = run_etl(dsn, "load", str(batch))
    _assert_failed_and_unchanged(dsn, res, 4, "region.tbl.gz")


def test_wrong_dsn_and_unreachable_server(batch: Path) -> None:
    res = run_etl("host=/nonexistent port=5 user=x password=s3cret dbname=x", "load",
                  str(batch))
    assert res.returncode == 5
    assert "ETL_DSN" in res.stderr
    assert "s3cret" not in res.stderr + res.stdout
    res = run_etl("this is not a dsn", "migrate")
    assert res.returncode == 2
    assert "ETL_DSN" in res.stderr
    res = run_etl(f"host=127.0.0.1 port={free_port()} user=x password=s3cret connect_timeout=3",
                  "status")
    assert res.returncode == 5
    assert "s3cret" not in res.stderr + res.stdout
    assert "127.0.0.1" in res.stderr
    env_res = subprocess.run(
        [sys.executable, "-m", "warehouse_etl.cli", "--dsn-env", "OTHER_DSN", "status"],
        env={**etl_env(""), "OTHER_DSN": f"host=127.0.0.1 port={free_port()}"},
        capture_output=True, text=True, check=False,
    )
    assert env_res.returncode == 5
    assert "OTHER_DSN" in env_res.stderr


def test_not_migrated_is_a_database_error(dsn: str, batch: Path) -> None:
    res = run_etl(dsn, "load", str(batch))
    assert res.returncode == 5
    assert "etl migrate" in res.stderr


def test_usage_errors_exit_2(dsn: str) -> None:
    assert run_etl(dsn, "load").returncode == 2
    assert run_etl(dsn, "load", "x", "--max-reject-ratio", "7").returncode == 2
    assert run_etl(dsn, "frobnicate").returncode == 2


def test_fingerprint_unchanged_by_failed_batch(dsn: str, batch: Path, tmp_path: Path) -> None:
    """A failure after a good batch leaves the good batch's data exactly as it was."""
    assert run_etl(dsn, "migrate").returncode == 0
    assert run_etl(dsn, "load", str(batch)).returncode == 0
    before = warehouse_fingerprint(dsn)
    bad = tmp_path / "batch_0002"
    bad.mkdir()
    for f in batch.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    lines = (bad / "lineitem.tbl").read_bytes().split(b"\n")
    lines[-5] = lines[-5] + b"|surplus"
    (bad / "lineitem.tbl").write_bytes(b"\n".join(lines))
    res = run_etl(dsn, "load", str(bad))
    assert res.returncode == 4
    assert warehouse_fingerprint(dsn) == before
