#!/usr/bin/env python3
"""End-to-end load benchmark: the ETL pipeline against a raw COPY, same server, same run.

Usage:
    python benchmarks/etl_load.py                    # SF1, own throwaway server
    python benchmarks/etl_load.py --scale-factor 0.1
    BENCH_DSN=... python benchmarks/etl_load.py --dsn-env BENCH_DSN   # an existing server
        (needs a superuser or pg_read_server_files for the server-side COPY, and the
         cache directory readable by the server)

The raw baseline is a server-side ``COPY lineitem FROM '<file>'`` into a plain
logged table with no indexes: the floor for getting those bytes into
PostgreSQL. The pipeline is the real ``etl load`` CLI in a child process
(checksums, staging, validation, dimension upserts, partitioned facts with
their indexes, ledger), so its peak RSS is measured with ``wait4``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from warehouse_etl.generate import generate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from testbed import stack_facts
from testbed.pgserver import devserver

# Outside any home directory: the server process must be able to read the files.
DEFAULT_CACHE = Path(os.environ.get("ETL_BENCH_CACHE", "/var/tmp/warehouse-etl/tpch"))  # noqa: S108
SERVER_SETTINGS = {"shared_buffers": "1GB", "max_wal_size": "16GB"}

RAW_TABLE = """
CREATE TABLE bench_raw_lineitem (
    l_orderkey bigint, l_partkey bigint, l_suppkey bigint, l_linenumber integer,
    l_quantity numeric(15,2), l_extendedprice numeric(15,2), l_discount numeric(15,2),
    l_tax numeric(15,2), l_returnflag text, l_linestatus text, l_shipdate date,
    l_commitdate date, l_receiptdate date, l_shipinstruct text, l_shipmode text,
    l_comment text, trailer text)
"""


def dataset(cache: Path, scale: float) -> Path:
    """Generate the batch once; later runs reuse it."""
    out = cache / f"sf{scale:g}-tbl"
    if not (out / "lineitem.tbl").exists():
        print(f"generating TPC-H SF{scale:g} into {out} ...", flush=True)
        generate(scale, out, "tbl")
    # The server reads the file itself for the raw COPY.
    for p in (cache, out, *out.iterdir()):
        p.chmod(p.stat().st_mode | 0o044 | (0o011 if p.is_dir() else 0))
    return out


def wal_lsn(dsn: str) -> int:
    """The server's current WAL insert position, in bytes."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(row[0])


def raw_copy(dsn: str, lineitem: Path) -> tuple[float, int, int]:
    """Seconds, rows and WAL bytes of the raw COPY."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_lineitem")
        conn.execute(RAW_TABLE)
        conn.execute("CHECKPOINT")
        wal0 = wal_lsn(dsn)
        t0 = time.monotonic()
        cur = conn.execute(
            f"COPY bench_raw_lineitem FROM '{lineitem}' (FORMAT csv, DELIMITER '|')"
        )
        elapsed = time.monotonic() - t0
        wal = wal_lsn(dsn) - wal0
        rows = cur.rowcount
        conn.execute("DROP TABLE bench_raw_lineitem")
        conn.execute("CHECKPOINT")
    return elapsed, rows, wal


def pipeline(dsn: str, batch: Path) -> tuple[float, int, dict[str, Any]]:
    env = {**os.environ, "ETL_DSN": dsn}
    cli = [sys.executable, "-m", "warehouse_etl.cli"]
    subprocess.run([*cli, "migrate", "--json"], env=env, check=True, capture_output=True)
    wal0 = wal_lsn(dsn)
    t0 = time.monotonic()
    proc = subprocess.Popen([*cli, "load", str(batch), "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    # Drain both pipes, then reap the loader with wait4 for its own rusage
    # (RUSAGE_CHILDREN would also count the data generator run earlier).
    err_chunks: list[bytes] = []
    drain = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()))  # type: ignore[union-attr]
    drain.start()
    out = proc.stdout.read()
    drain.join()
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = b"".join(err_chunks)
    peak_kb = usage.ru_maxrss
    if proc.returncode != 0:
        sys.stderr.write(err.decode()[-3000:])
        raise SystemExit(f"etl load failed with exit code {proc.returncode}")
    summary: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    summary["wal_bytes"] = wal_lsn(dsn) - wal0
    return elapsed, peak_kb, summary


def run(dsn: str, batch: Path) -> None:
    raw_s, raw_rows, raw_wal = raw_copy(dsn, batch / "lineitem.tbl")
    etl_s, peak_kb, summary = pipeline(dsn, batch)
    li = summary["tables"]["lineitem"]["read"]
    raw_rate = raw_rows / raw_s
    etl_rate = li / etl_s
    print(json.dumps({"pipeline_timings": summary.get("timings")}))
    print(f"raw COPY lineitem   : {raw_rows:>10,} rows in {raw_s:7.1f} s = "
          f"{raw_rate:>9,.0f} rows/s")
    print(f"etl load (pipeline) : {li:>10,} line items in {etl_s:7.1f} s = "
          f"{etl_rate:>9,.0f} rows/s ({summary['rows_read']:,} rows in all files)")
    print(f"ratio pipeline/raw  : {etl_rate / raw_rate:.2f}x  (target >= 0.50x)")
    # Both write everything through the WAL; on a machine whose WAL and disk
    # writes do not scale with cores, this ratio bounds the one above.
    print(f"WAL written         : raw {raw_wal / 2**20:,.0f} MiB, pipeline "
          f"{summary['wal_bytes'] / 2**20:,.0f} MiB ({raw_wal / summary['wal_bytes']:.2f}x)")
    print(f"loader peak RSS     : {peak_kb / 1024:.0f} MB  (target < 300 MB)")
    print(f"status {summary['status']}, rejected {summary['rows_rejected']}, "
          f"quality {summary['quality_score']}, facts {summary['facts_inserted']:,}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale-factor", type=float, default=1.0)
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--dsn-env", help="use the server in this environment variable")
    args = ap.parse_args()
    batch = dataset(args.cache_dir, args.scale_factor)
    if args.dsn_env:
        run(os.environ[args.dsn_env], batch)
        return
    # The stack's PostgreSQL version when installed (PG_BINDIR, if set, wins);
    # else devserver's own discovery.
    stack_bindir = Path(stack_facts.load()["wops_postgresql_bin_dir"])
    if (stack_bindir / "initdb").exists():
        os.environ.setdefault("PG_BINDIR", str(stack_bindir))
    with devserver(SERVER_SETTINGS) as server:
        print(f"throwaway server on port {server.port} ({server.bindir})", flush=True)
        run(server.dsn(), batch)


if __name__ == "__main__":
    main()
