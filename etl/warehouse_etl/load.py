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
from psycopg import errors as pgerr
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
from .facts import FactBuilder
from .metrics import BatchMetrics
from .stage import StagedPart, Stager, rejects_table
from .validate import TableCounts, Validator, ok_name
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


class _RecheckNeeded(Exception):
    """The optimistic pass missed something (a duplicate key, an unknown parent)."""


def load_batch(settings: Settings, opts: LoadOptions, metrics: BatchMetrics) -> dict[str, Any]:
    """Load one batch directory; returns the JSON summary the CLI prints."""
    return BatchLoad(settings, opts, metrics).run()


class BatchLoad:
    """State of one load attempt: its run id, timings and the summary it builds."""

    def __init__(self, settings: Settings, opts: LoadOptions, metrics: BatchMetrics) -> None:
        self.settings = settings
        self.opts = opts
        self.metrics = metrics
        self.started = time.monotonic()
        self.batch_dir = opts.batch_dir.resolve()
        self.batch_id = opts.batch_id or self.batch_dir.name
        self.summary: dict[str, Any] = {"batch_id": self.batch_id,
                                        "batch_dir": str(self.batch_dir)}
        self.run_id: int | None = None
        self.timer = Timer()

    def _elapsed(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def _start_run(self, conn: psycopg.Connection, files: dict[str, Any]) -> int:
        self.run_id = ledger.start_run(conn, self.settings, self.batch_id,
                                       str(self.batch_dir), files)
        self.summary["run_id"] = self.run_id
        return self.run_id

    def run(self) -> dict[str, Any]:
        try:
            with connect(self.settings, "warehouse_etl loader") as conn:
                return self._run(conn)
        except EtlError as exc:
            self._record_failure(exc)
            raise
        except psycopg.Error as exc:
            err = DatabaseError(f"batch {self.batch_id}: {exc}")
            self._record_failure(err)
            raise err from exc

    def _prepare(self, conn: psycopg.Connection) -> None:
        try:
            schema.ensure_current(conn, self.settings)
            abandoned = ledger.abandon_dead_runs(conn, self.settings)
            if abandoned:
                log.warning("marked dead runs abandoned", extra={"runs": abandoned})
            ledger.drop_staging(conn, self.settings, None)
        except psycopg.Error as exc:
            raise DatabaseError(f"preparing the load failed: {exc}") from exc

    def _scan_files(self, conn: psycopg.Connection) -> list[extract.SourceFile]:
        try:
            files = extract.discover(self.batch_dir)
            counter = _Bytes("checksum", sum(f.size for f in files), self.opts.progress)
            for src in files:
                extract.inspect(src)
                extract.prepass(src, counter)
        except InputError:
            self._start_run(conn, {})
            raise
        self.timer.lap("checksum")
        return files

    def _run(self, conn: psycopg.Connection) -> dict[str, Any]:
        self._prepare(conn)
        files = self._scan_files(conn)
        file_info = {f.path.name: {"sha256": f.sha256, "bytes": f.size} for f in files}
        self.summary["files"] = file_info
        previous = ledger.loaded_run(conn, self.settings, self.batch_id)
        if previous is not None:
            prev_sums = {k: v.get("sha256") for k, v in previous[1].items()}
            if prev_sums == {k: v["sha256"] for k, v in file_info.items()}:
                log.info("batch already loaded",
                         extra={"batch_id": self.batch_id, "run_id": previous[0]})
                self.summary.update(status="already_loaded", run_id=previous[0],
                                    duration_seconds=self._elapsed())
                return self.summary
            self._start_run(conn, file_info)
            raise InputError(
                f"batch {self.batch_id} was loaded by run {previous[0]} from different "
                "files; give changed data a new batch id"
            )
        run_id = self._start_run(conn, file_info)
        conn.execute("SELECT set_config('application_name', %s, false)",
                     (f"{ledger.APP_PREFIX}{run_id} main",))
        log.info("batch started", extra={"batch_id": self.batch_id, "run_id": run_id,
                                         "bytes": sum(f.size for f in files)})
        self._load(conn, run_id, files)
        self.summary["duration_seconds"] = self._elapsed()
        self.metrics.duration.set(self.summary["duration_seconds"])
        self.metrics.record_success()
        return self.summary

    def _record_failure(self, exc: EtlError) -> None:
        """Write the failed run in its own transaction, after the batch rolled back."""
        self.summary["duration_seconds"] = self._elapsed()
        self.summary["status"] = "rejected" if isinstance(exc, BatchRejectedError) else "failed"
        self.summary["error"] = str(exc)
        self.metrics.record_error(exc.kind)
        self.metrics.duration.set(self.summary["duration_seconds"])
        if self.run_id is None or isinstance(exc, BatchRejectedError):
            return  # never started, or the rejection was committed with its rejects
        try:
            with connect(self.settings, f"{ledger.APP_PREFIX}{self.run_id} cleanup") as conn:
                ledger.finish_run(conn, self.settings, self.run_id, "failed", self.summary,
                                  error=(exc.kind, str(exc)))
                ledger.drop_staging(conn, self.settings, self.run_id)
        except (EtlError, psycopg.Error) as exc2:
            log.error("could not record the failed run",
                      extra={"run_id": self.run_id, "error": str(exc2)})

    def _load(self, conn: psycopg.Connection, run_id: int,
              files: list[extract.SourceFile]) -> None:
        settings, summary, progress = self.settings, self.summary, self.opts.progress
        conn.execute(
            sql.SQL(
                "CREATE UNLOGGED TABLE {}.{} (phase text NOT NULL DEFAULT 'validate',"
                " table_name text NOT NULL, source_file text NOT NULL,"
                " line_no bigint NOT NULL, failed_rules text[] NOT NULL, record jsonb NOT NULL)"
            ).format(sql.Identifier(settings.staging_schema),
                     sql.Identifier(rejects_table(run_id)))
        )
        counter = _Bytes("stage", sum(f.size for f in files), progress)
        parts = Stager(settings, run_id, counter).run(files)
        self.timer.lap("stage")
        if progress:
            progress("validate", 0, 1)
        conn.execute("SET work_mem = '256MB'")
        validator = Validator(conn, settings, run_id)
        validator.create_views(parts)
        by_table = {f.table.name: f.path.name for f in files}
        checked = {t.name: all(p.rules_checked for p in parts if p.src.table is t)
                   for t in contract.TABLES}
        counts: dict[str, TableCounts] = {}
        for strict in (False, True):
            if strict:
                log.info("the optimistic pass missed a problem; validating every rule",
                         extra={"run_id": run_id})
                validator.reset()
            counts = self._validate(validator, parts, by_table, checked, strict=strict)
            over = summary["rows_rejected"] > settings.max_reject_ratio * summary["rows_read"]
            if over and not strict:
                continue  # the optimistic pass skips rules: a rejection must list them all
            if progress:
                progress("apply", 0, 1)
            builder = None if over else FactBuilder(settings, run_id)
            try:
                self._apply(conn, run_id, counts, builder, strict=strict)
                break
            except (pgerr.UniqueViolation, pgerr.CardinalityViolation, _RecheckNeeded):
                if strict:
                    raise
                _cleanup(conn, settings, run_id, keep_validation=True)
        self.metrics.quality.set(summary["quality_score"])
        for name, c in counts.items():
            loaded = 0 if summary["status"] == "rejected" else c.loaded
            self.metrics.record_counts(name, c.read, loaded, c.rejected)
        _cleanup(conn, settings, run_id)
        self.timer.lap("cleanup")
        if summary["status"] == "rejected":
            raise BatchRejectedError(summary["error"])
        log.info("batch loaded", extra={k: summary.get(k) for k in (
            "batch_id", "run_id", "rows_read", "rows_loaded", "rows_rejected",
            "facts_inserted", "quality_score")})

    def _validate(self, validator: Validator, parts: list[StagedPart],
                  by_table: dict[str, str], checked: dict[str, bool], *,
                  strict: bool) -> dict[str, TableCounts]:
        """One validation pass; fills the summary's counts and quality score."""
        for table in contract.TABLES:
            validator.validate_table(table, by_table[table.name], strict=strict,
                                     rules_checked=checked[table.name])
        counts = validator.counts(parts)
        failures = validator.category_failures()
        self.timer.lap("revalidate" if strict else "validate")
        rows_read = sum(c.read for c in counts.values())
        rows_rejected = sum(c.rejected for c in counts.values())
        q = quality.score(rows_read, failures)
        self.summary.update(
            rows_read=rows_read,
            rows_rejected=rows_rejected,
            rows_loaded=rows_read - rows_rejected,
            quality_score=q.score,
            quality={"components": q.components, "failures": failures},
            tables={k: {"read": c.read, "loaded": c.loaded, "rejected": c.rejected,
                        "slow_path": c.slow_path} for k, c in counts.items()},
        )
        return counts

    def _apply(self, conn: psycopg.Connection, run_id: int,
               counts: dict[str, TableCounts], builder: FactBuilder | None, *,
               strict: bool) -> None:
        """Build the facts in the background while the batch transaction runs."""
        if builder is not None:
            builder.start()
        try:
            self._transaction(conn, run_id, counts, builder, strict=strict)
        finally:
            if builder is not None:
                builder.wait()  # its tables must exist before any cleanup drops them

    def _transaction(self, conn: psycopg.Connection, run_id: int,
                     counts: dict[str, TableCounts], builder: FactBuilder | None, *,
                     strict: bool) -> None:
        """The batch transaction: quarantine, dimensions, facts and ledger, or nothing."""
        settings, summary = self.settings, self.summary
        rows_read, rows_rejected = summary["rows_read"], summary["rows_rejected"]
        ratio = rows_rejected / rows_read if rows_read else 0.0
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (schema.lock_key(settings, "load"),),
            )
            if ledger.loaded_run(conn, settings, self.batch_id) is not None:
                raise InputError(f"batch {self.batch_id} was loaded by a concurrent run")
            conn.execute(
                sql.SQL(
                    "INSERT INTO {wh}.etl_rejects (run_id, batch_id, table_name, source_file,"
                    " line_no, rule_id, column_name, failed_rules, record)"
                    " SELECT %s, %s, table_name, source_file, line_no,"
                    " split_part(failed_rules[1], ':', 1),"
                    " nullif(split_part(failed_rules[1], ':', 2), ''), failed_rules, record"
                    " FROM {stg}.{rej} ORDER BY table_name, line_no"
                ).format(wh=sql.Identifier(settings.schema),
                         stg=sql.Identifier(settings.staging_schema),
                         rej=sql.Identifier(rejects_table(run_id))),
                (run_id, self.batch_id),
            )
            if builder is None:
                message = (
                    f"batch {self.batch_id}: {rows_rejected} of {rows_read} rows rejected "
                    f"({ratio:.2%}), above the threshold of {settings.max_reject_ratio:.2%}; "
                    "nothing loaded, rejects are in etl_rejects"
                )
                self.timer.lap("apply")
                summary.update(status="rejected", rows_loaded=0, facts_inserted=0,
                               error=message, timings=self.timer.timings,
                               duration_seconds=self._elapsed())
                ledger.finish_run(conn, settings, run_id, "rejected", summary,
                                  error=("rejected", message))
                return
            _assert_bookkeeping(conn, settings, run_id, counts, strict)
            applier = Applier(conn, settings, run_id)
            changed = applier.apply_dimensions()
            applier.apply_dates()
            self.timer.lap("dimensions")
            li = counts["lineitem"]
            prepared = builder.result()  # built while the dimensions were applied
            self.timer.lap("facts_prepared")
            facts = applier.apply_facts(prepared, li.read - li.rejected)
            if facts.inserted + facts.already_present + li.rejected != li.read:
                message = (
                    f"lineitem: {li.read} read but {facts.inserted} inserted + "
                    f"{facts.already_present} already present + {li.rejected} rejected"
                )
                if not strict:
                    # Too many: a duplicated order fanned out; too few: a line item
                    # whose order, part or supplier is unknown.
                    raise _RecheckNeeded(message)
                raise IntegrityAssertionError(message)
            self.timer.lap("facts")
            summary.update(
                status="loaded",
                facts_inserted=facts.inserted,
                facts_already_present=facts.already_present,
                dimension_rows_changed=changed,
                new_partitions=facts.new_partitions,
                timings=self.timer.timings,
                duration_seconds=self._elapsed(),
            )
            ledger.finish_run(conn, settings, run_id, "loaded", summary)


def _assert_bookkeeping(conn: psycopg.Connection, settings: Settings, run_id: int,
                        counts: dict[str, TableCounts], strict: bool) -> None:
    """loaded + rejected = read, checked against the rows actually staged as valid."""
    for table in contract.TABLES:
        if table.name == "lineitem":
            continue  # checked against the fact insert itself
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(settings.staging_schema),
                sql.Identifier(ok_name(run_id, table.name)),
            )
        ).fetchone()
        valid = int(row[0]) if row else 0
        c = counts[table.name]
        if valid + c.rejected != c.read:
            message = f"{table.name}: {c.read} read but {valid} valid + {c.rejected} rejected"
            if not strict:
                raise _RecheckNeeded(message)  # a duplicated parent doubled rejects
            raise IntegrityAssertionError(message)


def _cleanup(conn: psycopg.Connection, settings: Settings, run_id: int, *,
             keep_validation: bool = False) -> None:
    """Drop the run's scratch tables (only the prepared facts with ``keep_validation``)."""
    try:
        if keep_validation:
            ledger.drop_staging(conn, settings, run_id, only=r"_fact(s_w|_sales_)")
            return
        ledger.drop_staging(conn, settings, run_id)
    except psycopg.Error as exc:
        log.warning("could not drop staging tables", extra={"run_id": run_id, "error": str(exc)})
