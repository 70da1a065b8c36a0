"""One batch, end to end: files -> staging -> validation -> one warehouse transaction.

Everything before the batch transaction only writes scratch tables, so any
failure up to the commit leaves the warehouse exactly as it was; the ledger
row says what happened either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from . import contract, extract, jsonlog, ledger, quality, schema
from .config import Settings
from .db import connect
from .errors import (
    BatchRejectedError,
    DatabaseError,
    EtlError,
    InputError,
    IntegrityAssertionError,
)
from .metrics import BatchMetrics
from .stage import Stager, rejects_table
from .validate import Validator, ok_name
from .warehouse import Applier

log = jsonlog.get("load")


@dataclass
class LoadOptions:
    batch_dir: Path
    batch_id: str | None = None
    progress: Callable[[str, int, int], None] | None = None  # (phase, done, total)


@dataclass
class Timer:
    timings: dict[str, float] = field(default_factory=dict)
    _t: float = field(default_factory=time.monotonic)

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.timings[name] = round(now - self._t, 3)
        self._t = now


class _Bytes:
    """Thread-safe byte counter feeding the progress callback."""

    def __init__(self, phase: str, total: int, cb: Callable[[str, int, int], None] | None):
        self.phase, self.total, self.cb, self.done = phase, total, cb, 0
        self._lock = threading.Lock()

    def __call__(self, n: int) -> None:
        if self.cb is None:
            return
        with self._lock:
            self.done += n
            self.cb(self.phase, self.done, self.total)


def load_batch(settings: Settings, opts: LoadOptions, metrics: BatchMetrics) -> dict[str, Any]:
    """Load one batch directory; returns the JSON summary the CLI prints."""
    started = time.monotonic()
    batch_dir = opts.batch_dir.resolve()
    batch_id = opts.batch_id or batch_dir.name
    summary: dict[str, Any] = {"batch_id": batch_id, "batch_dir": str(batch_dir)}
    conn = connect(settings, "warehouse_etl loader")
    run_id: int | None = None
    try:
        with conn:
            try:
                schema.ensure_current(conn, settings)
                abandoned = ledger.abandon_dead_runs(conn, settings)
                if abandoned:
                    log.warning("marked dead runs abandoned", extra={"runs": abandoned})
                ledger.drop_staging(conn, settings, None)
            except psycopg.Error as exc:
                raise DatabaseError(f"preparing the load failed: {exc}") from exc
            timer = Timer()
            files: list[extract.SourceFile] = []
            try:
                files = extract.discover(batch_dir)
                total = sum(f.size for f in files)
                counter = _Bytes("checksum", total, opts.progress)
                for src in files:
                    extract.inspect(src)
                    extract.prepass(src, counter)
            except InputError as exc:
                run_id = ledger.start_run(conn, settings, batch_id, str(batch_dir), {})
                summary["run_id"] = run_id
                raise exc
            file_info = {f.path.name: {"sha256": f.sha256, "bytes": f.size} for f in files}
            summary["files"] = file_info
            timer.lap("checksum")
            previous = ledger.loaded_run(conn, settings, batch_id)
            if previous is not None:
                prev_sums = {k: v.get("sha256") for k, v in previous[1].items()}
                if prev_sums == {k: v["sha256"] for k, v in file_info.items()}:
                    log.info("batch already loaded", extra={"batch_id": batch_id,
                                                            "run_id": previous[0]})
                    summary.update(status="already_loaded", run_id=previous[0],
                                   duration_seconds=round(time.monotonic() - started, 3))
                    return summary
                run_id = ledger.start_run(conn, settings, batch_id, str(batch_dir), file_info)
                summary["run_id"] = run_id
                raise InputError(
                    f"batch {batch_id} was loaded by run {previous[0]} from different files; "
                    "give changed data a new batch id"
                )
            run_id = ledger.start_run(conn, settings, batch_id, str(batch_dir), file_info)
            summary["run_id"] = run_id
            conn.execute("SELECT set_config('application_name', %s, false)",
                         (f"{ledger.APP_PREFIX}{run_id} main",))
            log.info("batch started", extra={"batch_id": batch_id, "run_id": run_id,
                                             "bytes": sum(f.size for f in files)})
            _run(conn, settings, run_id, batch_id, files, opts, timer, summary, metrics, started)
            summary["duration_seconds"] = round(time.monotonic() - started, 3)
            metrics.duration.set(summary["duration_seconds"])
            metrics.record_success()
            return summary
    except EtlError as exc:
        _record_failure(settings, run_id, summary, exc, started, metrics)
        raise
    except psycopg.Error as exc:
        err = DatabaseError(f"batch {batch_id}: {exc}")
        _record_failure(settings, run_id, summary, err, started, metrics)
        raise err from exc


def _record_failure(settings: Settings, run_id: int | None, summary: dict[str, Any],
                    exc: EtlError, started: float, metrics: BatchMetrics) -> None:
    """Write the failed run in its own transaction, after the batch rolled back."""
    summary["duration_seconds"] = round(time.monotonic() - started, 3)
    summary["status"] = "rejected" if isinstance(exc, BatchRejectedError) else "failed"
    summary["error"] = str(exc)
    metrics.record_error(exc.kind)
    metrics.duration.set(summary["duration_seconds"])
    if run_id is None or isinstance(exc, BatchRejectedError):
        return  # never started, or the rejection was committed with its rejects
    try:
        with connect(settings, f"{ledger.APP_PREFIX}{run_id} cleanup") as conn:
            ledger.finish_run(conn, settings, run_id, "failed", summary, (exc.kind, str(exc)))
            ledger.drop_staging(conn, settings, run_id)
    except (EtlError, psycopg.Error) as exc2:
        log.error("could not record the failed run", extra={"run_id": run_id,
                                                            "error": str(exc2)})


def _run(conn: psycopg.Connection, settings: Settings, run_id: int, batch_id: str,
         files: list[extract.SourceFile], opts: LoadOptions, timer: Timer,
         summary: dict[str, Any], metrics: BatchMetrics, started: float) -> None:
    stg = sql.Identifier(settings.staging_schema)
    conn.execute(
        sql.SQL(
            "CREATE UNLOGGED TABLE {}.{} (table_name text NOT NULL, source_file text NOT NULL,"
            " line_no bigint NOT NULL, failed_rules text[] NOT NULL, record jsonb NOT NULL)"
        ).format(stg, sql.Identifier(rejects_table(run_id)))
    )
    counter = _Bytes("stage", sum(f.size for f in files), opts.progress)
    parts = Stager(settings, run_id, counter).run(files)
    timer.lap("stage")
    if opts.progress:
        opts.progress("validate", 0, 1)
    conn.execute("SET work_mem = '256MB'")
    validator = Validator(conn, settings, run_id)
    validator.create_views(parts)
    by_table = {f.table.name: f for f in files}
    for table in contract.TABLES:
        validator.validate_table(table, by_table[table.name].path.name)
    counts = validator.counts(parts)
    failures = validator.category_failures()
    timer.lap("validate")
    rows_read = sum(c.read for c in counts.values())
    rows_rejected = sum(c.rejected for c in counts.values())
    q = quality.score(rows_read, failures)
    summary.update(
        rows_read=rows_read,
        rows_rejected=rows_rejected,
        rows_loaded=rows_read - rows_rejected,
        quality_score=q.score,
        quality={"components": q.components, "failures": failures},
        tables={k: {"read": c.read, "loaded": c.loaded, "rejected": c.rejected,
                    "slow_path": c.slow_path} for k, c in counts.items()},
    )
    metrics.quality.set(q.score)
    for name, c in counts.items():
        metrics.record_counts(name, c.read, c.loaded, c.rejected)
    ratio = rows_rejected / rows_read if rows_read else 0.0
    wh = sql.Identifier(settings.schema)
    over = ratio > settings.max_reject_ratio
    if opts.progress:
        opts.progress("apply", 0, 1)
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (schema.lock_key(settings, "load"),),
        )
        if ledger.loaded_run(conn, settings, batch_id) is not None:
            raise InputError(f"batch {batch_id} was loaded by a concurrent run")
        conn.execute(
            sql.SQL(
                "INSERT INTO {wh}.etl_rejects (run_id, batch_id, table_name, source_file,"
                " line_no, rule_id, column_name, failed_rules, record)"
                " SELECT %s, %s, table_name, source_file, line_no,"
                " split_part(failed_rules[1], ':', 1),"
                " nullif(split_part(failed_rules[1], ':', 2), ''), failed_rules, record"
                " FROM {stg}.{rej} ORDER BY table_name, line_no"
            ).format(wh=wh, stg=stg, rej=sql.Identifier(rejects_table(run_id))),
            (run_id, batch_id),
        )
        if over:
            summary["status"] = "rejected"
            summary["rows_loaded"] = 0
            summary["facts_inserted"] = 0
            summary["duration_seconds"] = round(time.monotonic() - started, 3)
            message = (
                f"batch {batch_id}: {rows_rejected} of {rows_read} rows rejected "
                f"({ratio:.2%}), above the threshold of {settings.max_reject_ratio:.2%}; "
                "nothing loaded, rejects are in etl_rejects"
            )
            summary["error"] = message
            timer.lap("apply")
            summary["timings"] = timer.timings
            ledger.finish_run(conn, settings, run_id, "rejected", summary,
                              ("rejected", message))
        else:
            _assert_bookkeeping(conn, settings, run_id, counts)
            applier = Applier(conn, settings, run_id)
            changed = applier.apply_dimensions()
            applier.apply_dates()
            timer.lap("dimensions")
            li = counts["lineitem"]
            facts = applier.apply_facts(li.read - li.rejected)
            if facts.inserted + facts.already_present + li.rejected != li.read:
                raise IntegrityAssertionError(
                    f"lineitem: {li.read} read but {facts.inserted} inserted + "
                    f"{facts.already_present} already present + {li.rejected} rejected"
                )
            timer.lap("facts")
            summary.update(
                status="loaded",
                facts_inserted=facts.inserted,
                facts_already_present=facts.already_present,
                dimension_rows_changed=changed,
                new_partitions=facts.new_partitions,
                timings=timer.timings,
            )
            ledger.finish_run(conn, settings, run_id, "loaded", summary)
    if over:
        _cleanup(conn, settings, run_id)
        raise BatchRejectedError(summary["error"])
    _cleanup(conn, settings, run_id)
    timer.lap("cleanup")
    if summary.get("new_partitions"):
        # Fresh partitions have no statistics until autovacuum gets to them.
        conn.execute(sql.SQL("ANALYZE {}.fact_sales").format(wh))
    log.info("batch loaded", extra={k: summary.get(k) for k in (
        "batch_id", "run_id", "rows_read", "rows_loaded", "rows_rejected", "facts_inserted",
        "quality_score")})


def _assert_bookkeeping(conn: psycopg.Connection, settings: Settings, run_id: int,
                        counts: dict[str, Any]) -> None:
    """loaded + rejected = read, checked against the rows actually staged as valid."""
    for table in contract.TABLES:
        if table.name == "lineitem":
            continue  # checked against the fact insert itself
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.{} WHERE NOT {}").format(
                sql.Identifier(settings.staging_schema),
                sql.Identifier(ok_name(run_id, table.name)),
                sql.SQL("from_warehouse") if table.name == "orders" else sql.SQL("false"),
            )
        ).fetchone()
        valid = int(row[0]) if row else 0
        c = counts[table.name]
        if valid + c.rejected != c.read:
            raise IntegrityAssertionError(
                f"{table.name}: {c.read} read but {valid} valid + {c.rejected} rejected"
            )


def _cleanup(conn: psycopg.Connection, settings: Settings, run_id: int) -> None:
    try:
        ledger.drop_staging(conn, settings, run_id)
    except psycopg.Error as exc:
        log.warning("could not drop staging tables", extra={"run_id": run_id, "error": str(exc)})
