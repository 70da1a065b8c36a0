"""The batch ledger (``etl_runs``): what was loaded, from which bytes, how well.

A run row is inserted (committed) before any work so that even a loader killed
with SIGKILL leaves a trace; the batch transaction flips it to ``loaded`` in
the same commit as the data, and failures are written after the rollback in
a transaction of their own.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from . import __version__
from .config import Settings

APP_PREFIX = "warehouse_etl run "


def _t(settings: Settings, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(settings.schema), sql.Identifier(name))


def abandon_dead_runs(conn: psycopg.Connection, settings: Settings) -> list[int]:
    """Mark ``running`` rows whose loader has no session left as ``abandoned``.

    Liveness is judged from pg_stat_activity (every loader connection carries
    its run id in application_name), so no heartbeat table is needed.
    """
    rows = conn.execute(
        sql.SQL(
            "UPDATE {runs} r SET status = 'abandoned', finished_at = now(),"
            " error = 'the loader stopped without finishing (killed or lost connection)'"
            " WHERE r.status = 'running' AND NOT EXISTS ("
            "  SELECT 1 FROM pg_stat_activity a"
            "  WHERE a.application_name LIKE %s || r.run_id || ' %%')"
            " RETURNING r.run_id"
        ).format(runs=_t(settings, "etl_runs")),
        (APP_PREFIX,),
    ).fetchall()
    return [int(r[0]) for r in rows]


def loaded_run(
    conn: psycopg.Connection, settings: Settings, batch_id: str
) -> tuple[int, dict[str, Any]] | None:
    row = conn.execute(
        sql.SQL(
            "SELECT run_id, files FROM {} WHERE batch_id = %s AND status = 'loaded'"
        ).format(_t(settings, "etl_runs")),
        (batch_id,),
    ).fetchone()
    return (int(row[0]), dict(row[1])) if row else None


def start_run(
    conn: psycopg.Connection, settings: Settings, batch_id: str, batch_dir: str,
    files: dict[str, Any],
) -> int:
    loader = {"host": socket.gethostname(), "pid": os.getpid(), "version": __version__}
    row = conn.execute(
        sql.SQL(
            "INSERT INTO {} (batch_id, batch_dir, status, files, loader)"
            " VALUES (%s, %s, 'running', %s, %s) RETURNING run_id"
        ).format(_t(settings, "etl_runs")),
        (batch_id, batch_dir, Jsonb(files), Jsonb(loader)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def finish_run(
    conn: psycopg.Connection, settings: Settings, run_id: int, status: str,
    summary: dict[str, Any], *, error: tuple[str, str] | None = None,
) -> None:
    """Close a run row; ``summary`` carries counts, score and timings."""
    conn.execute(
        sql.SQL(
            "UPDATE {} SET status = %(status)s, finished_at = now(),"
            " duration_seconds = %(duration)s, files = coalesce(%(files)s, files),"
            " rows_read = %(read)s, rows_loaded = %(loaded)s, rows_rejected = %(rejected)s,"
            " facts_inserted = %(facts)s, table_counts = %(tables)s,"
            " quality_score = %(score)s, quality = %(quality)s, timings = %(timings)s,"
            " error_kind = %(ekind)s, error = %(error)s"
            " WHERE run_id = %(run_id)s"
        ).format(_t(settings, "etl_runs")),
        {
            "status": status,
            "duration": summary.get("duration_seconds"),
            "files": Jsonb(summary["files"]) if summary.get("files") else None,
            "read": summary.get("rows_read"),
            "loaded": summary.get("rows_loaded"),
            "rejected": summary.get("rows_rejected"),
            "facts": summary.get("facts_inserted"),
            "tables": Jsonb(summary["tables"]) if summary.get("tables") else None,
            "score": summary.get("quality_score"),
            "quality": Jsonb(summary["quality"]) if summary.get("quality") else None,
            "timings": Jsonb(summary.get("timings") or {}),
            "ekind": error[0] if error else None,
            "error": error[1] if error else None,
            "run_id": run_id,
        },
    )


def recent(conn: psycopg.Connection, settings: Settings, limit: int) -> list[dict[str, Any]]:
    cur = conn.execute(
        sql.SQL(
            "SELECT run_id, batch_id, status, started_at, finished_at, duration_seconds,"
            " rows_read, rows_loaded, rows_rejected, facts_inserted, quality_score,"
            " error_kind, error FROM {} ORDER BY run_id DESC LIMIT %s"
        ).format(_t(settings, "etl_runs")),
        (limit,),
    )
    names = [d.name for d in cur.description or []]
    return [json.loads(json.dumps(dict(zip(names, r, strict=True)), default=str))
            for r in cur.fetchall()]


def drop_staging(conn: psycopg.Connection, settings: Settings, run_id: int | None,
                 only: str = "") -> int:
    """Drop one run's staging tables, or (run_id None) those of every finished run.

    ``only`` narrows a run's tables to names matching ``r<run_id>`` + that regex.
    """
    rows = conn.execute(
        sql.SQL(
            "SELECT c.relname, c.relkind FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v')"
            " AND c.relname ~ '^r[0-9]+_' AND NOT c.relispartition"
            " AND (%s::bigint IS NULL AND NOT EXISTS (SELECT 1 FROM {runs} r"
            "       WHERE r.status = 'running'"
            "       AND r.run_id = substring(c.relname FROM '^r([0-9]+)_')::bigint)"
            "      OR c.relname ~ ('^r' || %s::bigint || %s))"
        ).format(runs=_t(settings, "etl_runs")),
        (settings.staging_schema, run_id, run_id, only or "_"),
    ).fetchall()
    for name, kind in rows:
        stmt = sql.SQL("DROP VIEW IF EXISTS {}.{} CASCADE" if kind == "v" else
                       "DROP TABLE IF EXISTS {}.{} CASCADE")
        conn.execute(stmt.format(sql.Identifier(settings.staging_schema), sql.Identifier(name)))
    return len(rows)
