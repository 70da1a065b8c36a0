"""A throwaway PostgreSQL for the whole session, a fresh database per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from warehouse_etl.generate import generate

from testbed import stack_facts
from testbed.pgserver import DevServer, devserver, find_bindir

SCALE = 0.01
REPO = Path(__file__).resolve().parents[2]
# The stack's server binaries when installed (PG_BINDIR, if set, wins); else
# the server module's own discovery.
_STACK_BINDIR = Path(stack_facts.load()["wops_postgresql_bin_dir"])
if (_STACK_BINDIR / "initdb").exists():
    os.environ.setdefault("PG_BINDIR", str(_STACK_BINDIR))


def _have_server() -> bool:
    try:
        find_bindir()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def pg_server() -> Iterator[DevServer]:
    if not _have_server():
        pytest.skip("PostgreSQL server binaries not installed")
    # Durability settings off: the tests check logic, not crash safety of the disk.
    with devserver({"fsync": "off", "synchronous_commit": "off",
                    "full_page_writes": "off"}) as server:
        yield server


@pytest.fixture
def dsn(pg_server: DevServer) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.dsn(name)
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SF 0.01 batch, generated once; tests copy it before changing it."""
    out = tmp_path_factory.mktemp("tpch") / "batch_full"
    generate(SCALE, out, "tbl")
    return out


@pytest.fixture
def batch(tpch: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "batch_0001"
    shutil.copytree(tpch, dst)
    return dst


def etl_env(dsn: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETL_", "PG"))}
    env["ETL_DSN"] = dsn
    env.update(extra)
    return env


def run_etl(dsn: str, *args: str, timeout: float = 300, **env: str
            ) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, as cron or Airflow would run it."""
    return subprocess.run(
        [sys.executable, "-m", "warehouse_etl.cli", *args],
        env=etl_env(dsn, **env), capture_output=True, text=True, timeout=timeout, check=False,
    )


def query(dsn: str, q: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(q, params).fetchall()


def warehouse_fingerprint(dsn: str, schema: str = "warehouse") -> dict[str, Any]:
    """Counts and content hashes of every warehouse table (run ids excluded)."""
    out: dict[str, Any] = {}
    tables = {
        "fact_sales": "orderkey, linenumber",
        "dim_customer": "customer_key",
        "dim_product": "product_key",
        "dim_supplier": "supplier_key",
        "product_supplier": "product_key, supplier_key",
        "ref_nation": "nation_key",
        "ref_region": "region_key",
        "dim_date": "date_key",
        "sales_order": "orderkey",
    }
    for table, order in tables.items():
        row = query(
            dsn,
            f"SELECT count(*), md5(coalesce(string_agg((to_jsonb(t) - 'run_id')::text, ','"
            f" ORDER BY {order}), '')) FROM {schema}.{table} t",
        )[0]
        out[table] = (int(row[0]), row[1])
    out["sums"] = query(
        dsn,
        f"SELECT sum(quantity), sum(extended_price), sum(discount), sum(tax)"
        f" FROM {schema}.fact_sales",
    )[0]
    return out


def file_totals(path: Path) -> dict[str, Any]:
    """Line count and column sums straight from a lineitem .tbl file."""
    n = 0
    qty = Decimal(0)
    price = Decimal(0)
    with path.open() as fh:
        for line in fh:
            f = line.split("|")
            n += 1
            qty += Decimal(f[4])
            price += Decimal(f[5])
    return {"rows": n, "quantity": qty, "extended_price": price}
