"""The batch discovery used by the DAG, and the DAG file itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
from conftest import run_etl
from warehouse_etl.config import load_settings
from warehouse_etl.incoming import pending_batches

DAG_FILE = Path(__file__).resolve().parents[2] / "etl" / "dags" / "warehouse_etl_dag.py"


def test_pending_batches_in_name_order_skipping_loaded(dsn: str, batch: Path,
                                                       tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for name in ("2024-01-03", "2024-01-01", "2024-01-02"):
        shutil.copytree(batch, incoming / name)
    (incoming / ".tmp-upload").mkdir()
    (incoming / "2024-01-02" / "_READY").touch()
    assert run_etl(dsn, "migrate").returncode == 0
    assert run_etl(dsn, "load", str(incoming / "2024-01-01")).returncode == 0
    settings = load_settings(env={"ETL_DSN": dsn})
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert [p.name for p in pending_batches(conn, settings, incoming)] == [
            "2024-01-02", "2024-01-03"]
        assert [p.name for p in pending_batches(conn, settings, incoming, "_READY")] == [
            "2024-01-02"]
        assert pending_batches(conn, settings, tmp_path / "missing") == []


def test_dag_file_is_valid_python() -> None:
    compile(DAG_FILE.read_text(), str(DAG_FILE), "exec")
