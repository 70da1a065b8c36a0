"""Which batch directories in an incoming area still need loading.

Shared by the Airflow DAG and anything else that polls a drop directory, so
the rule (sorted by name, skip what the ledger has as loaded, optionally wait
for a marker file) lives in one tested place.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from .config import Settings


def pending_batches(
    conn: psycopg.Connection, settings: Settings, incoming: Path, ready_marker: str | None = None
) -> list[Path]:
    """Batch directories not yet loaded, oldest name first.

    Names sort in arrival order when producers use dated names
    (``2024-06-01T0300``, ``batch_000123``); loading in that order keeps
    incremental batches from overtaking each other.
    """
    if not incoming.is_dir():
        return []
    candidates = sorted(
        p for p in incoming.iterdir()
        if p.is_dir() and not p.name.startswith(".")
        and (not ready_marker or (p / ready_marker).exists())
    )
    if not candidates:
        return []
    rows = conn.execute(
        sql.SQL("SELECT batch_id FROM {}.etl_runs WHERE status = 'loaded' AND batch_id = ANY(%s)")
        .format(sql.Identifier(settings.schema)),
        ([p.name for p in candidates],),
    ).fetchall()
    done = {r[0] for r in rows}
    return [p for p in candidates if p.name not in done]
