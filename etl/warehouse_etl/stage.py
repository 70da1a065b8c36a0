"""COPY of the input files into per-run staging tables, several parts at once.

Staging is optimistic: each part is first COPYed straight into typed columns,
which lets PostgreSQL's own input functions do the type checking at COPY
speed. Only a part that holds a value of the wrong type is staged again as
text and typed row by row in SQL, so type rejects keep exact line numbers.
Staging tables are UNLOGGED and committed (not temporary) so that parallel
connections can fill them and parallel query can validate them; they are
scratch space that the batch transaction reads and the run drops afterwards.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import errors as pgerr
from psycopg import sql

from . import contract, extract, jsonlog
from .config import Settings
from .db import connect
from .errors import DatabaseError, EtlError, InputError

log = jsonlog.get("stage")

# Errors that mean the file itself is malformed: staging it as text would fail
# the same way, so they end the batch with an input error.
_STRUCTURAL = (pgerr.BadCopyFileFormat, pgerr.CharacterNotInRepertoire)
_TRAILER_CHECK = "structure_trailer"
# Errors that mean one value has the wrong type: stage as text and type in SQL.
_TYPE_ERRORS = (
    pgerr.InvalidTextRepresentation,
    pgerr.NumericValueOutOfRange,
    pgerr.InvalidDatetimeFormat,
    pgerr.DatetimeFieldOverflow,
    pgerr.InvalidParameterValue,
)

_INT_RE = r"^\s*[+-]?[0-9]{1,18}\s*$"
_DEC_RE = r"^\s*[+-]?([0-9]{1,13}(\.[0-9]*)?|\.[0-9]+)\s*$"
_TYPE_RULE = {
    contract.Kind.INT: "type.integer",
    contract.Kind.DEC: "type.decimal",
    contract.Kind.DATE: "type.date",
}
_LINE_RE = re.compile(r"line (\d+)")
_COLUMN_RE = re.compile(r"column (\w+)")


@dataclass
class StagedPart:
    src: extract.SourceFile
    part: extract.FilePart
    table_name: str  # typed staging table, in the staging schema
    rows: int = 0
    type_rejects: int = 0
    slow_path: bool = False
    rules_checked: bool = False  # the COPY enforced required and domain rules


def part_table(run_id: int, table: str, index: int) -> str:
    return f"r{run_id}_{table}_p{index}"


def rejects_table(run_id: int) -> str:
    return f"r{run_id}_rejects"


def _copy_statement(
    settings: Settings, src: extract.SourceFile, table: str, trailer: bool
) -> sql.Composed:
    cols = [sql.Identifier(c) for c in src.table.column_names]
    if trailer:
        cols.append(sql.Identifier("_trailer"))
    if src.fmt == "csv":
        opts = sql.SQL("FORMAT csv, DELIMITER ',', HEADER MATCH, ENCODING 'UTF8', FREEZE")
    else:
        # dbgen files have no quoting at all: use a quote byte that cannot
        # occur so that a '"' inside a comment stays an ordinary character.
        opts = sql.SQL("FORMAT csv, DELIMITER '|', QUOTE E'\\x01', ENCODING 'UTF8', FREEZE")
    # FREEZE: the table is created in the same transaction, so its rows can be
    # written frozen and the validation scans do not dirty every page again.
    return sql.SQL("COPY {}.{} ({}) FROM STDIN ({})").format(
        sql.Identifier(settings.staging_schema), sql.Identifier(table),
        sql.SQL(", ").join(cols), opts,
    )


def _create_statement(
    settings: Settings, src: extract.SourceFile, table: str, first_row_line: int, *,
    typed: bool, rules: bool = False,
) -> sql.Composed:
    """A staging table; with ``rules`` it also enforces required and domain rules.

    Enforcing the rules as constraints lets a clean part prove itself during
    the COPY, on the staging connections, with no extra pass over its rows.
    """
    cols: list[sql.Composable] = []
    for c in src.table.columns:
        not_null = sql.SQL(" NOT NULL") if rules and c.required else sql.SQL("")
        cols.append(sql.SQL("{} {}{}").format(
            sql.Identifier(c.name), sql.SQL(c.kind.value if typed else "text"), not_null))
        if rules and c.required and c.kind is contract.Kind.TEXT:
            cols.append(sql.SQL("CONSTRAINT {} CHECK (btrim({}) <> '')").format(
                sql.Identifier(f"rule_required_{c.name}"), sql.Identifier(c.name)))
    if rules:
        for i, dom in enumerate(src.table.domains):
            pred = sql.SQL(dom.predicate).format() if "%(" not in dom.predicate else (
                sql.SQL(dom.predicate.replace("%(date_min)s", "{lo}")
                        .replace("%(date_max)s", "{hi}")).format(
                    lo=sql.Literal(settings.date_min), hi=sql.Literal(settings.date_max)))
            cols.append(sql.SQL("CONSTRAINT {} CHECK ({})").format(
                sql.Identifier(f"rule_{i}"), pred))
    if src.fmt == "tbl" and src.trailing_delimiter:
        # Anything after the last delimiter means the line has too many fields.
        cols.append(sql.SQL("_trailer text CONSTRAINT {} CHECK (_trailer IS NULL)").format(
            sql.Identifier(_TRAILER_CHECK)))
    return sql.SQL(
        "CREATE UNLOGGED TABLE {}.{} (line_no bigint GENERATED ALWAYS AS IDENTITY "
        "(START WITH {} CACHE 10000), {}) WITH (autovacuum_enabled = off)"
    ).format(
        sql.Identifier(settings.staging_schema),
        sql.Identifier(table),
        sql.Literal(first_row_line),
        sql.SQL(", ").join(cols),
    )


def _input_error(src: extract.SourceFile, part: extract.FilePart, exc: psycopg.Error) -> InputError:
    """Translate a COPY failure into 'file:line: what is wrong'."""
    diag = exc.diag
    context = diag.context or ""
    match = _LINE_RE.search(context)
    where = str(src.path)
    if match:
        where += f":{part.first_line + int(match.group(1)) - 1}"
    what = diag.message_primary or str(exc)
    if isinstance(exc, pgerr.CheckViolation) and diag.constraint_name == _TRAILER_CHECK:
        what = f"too many fields (expected {len(src.table.columns)})"
    col = _COLUMN_RE.search(context)
    if col and col.group(1) != "_trailer":
        what += f" (column {col.group(1)})"
    return InputError(f"{where}: {what}")


class Stager:
    """Runs the COPY work units on ``settings.workers`` connections."""

    def __init__(
        self, settings: Settings, run_id: int, progress: Callable[[int], None] | None = None
    ) -> None:
        self.settings = settings
        self.run_id = run_id
        self.progress = progress
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _copy(self, conn: psycopg.Connection, src: extract.SourceFile, part: extract.FilePart,
              table: str, *, typed: bool, rules: bool = False) -> int:
        first_row_line = part.first_line + (1 if src.header else 0)
        trailer = src.fmt == "tbl" and src.trailing_delimiter
        with conn.transaction():
            conn.execute(_create_statement(self.settings, src, table, first_row_line,
                                           typed=typed, rules=rules))
            cur = conn.cursor()
            with cur.copy(_copy_statement(self.settings, src, table, trailer)) as copy:
                for block in extract.stream(src, part, self.progress):
                    if self._stop.is_set():
                        raise EtlError("staging stopped: another part failed")
                    copy.write(block)
            return cur.rowcount

    def _slow_path(self, conn: psycopg.Connection, staged: StagedPart) -> None:
        """Stage as text, then type every value in SQL; bad values become rejects."""
        src, part = staged.src, staged.part
        raw = staged.table_name + "_raw"
        staged.slow_path = True
        log.info("type error in fast path, staging as text",
                 extra={"file": str(src.path), "part": part.index})
        try:
            self._copy(conn, src, part, raw, typed=False)
        except _STRUCTURAL as exc:
            raise _input_error(src, part, exc) from exc
        except pgerr.CheckViolation as exc:
            raise _input_error(src, part, exc) from exc
        stg = sql.Identifier(self.settings.staging_schema)
        first_row_line = part.first_line + (1 if src.header else 0)
        conn.execute(_create_statement(self.settings, src, staged.table_name, first_row_line,
                                       typed=True))
        checks: list[tuple[contract.Column, sql.Composable]] = []
        for col in src.table.columns:
            ident = sql.Identifier(col.name)
            if col.kind is contract.Kind.INT:
                checks.append((col, sql.SQL("({} ~ {})").format(ident, sql.Literal(_INT_RE))))
            elif col.kind is contract.Kind.DEC:
                checks.append((col, sql.SQL("({} ~ {})").format(ident, sql.Literal(_DEC_RE))))
            elif col.kind is contract.Kind.DATE:
                checks.append((col, sql.SQL("{}.etl_is_date(btrim({}))").format(
                    sql.Identifier(self.settings.schema), ident)))
        ok = sql.SQL(" AND ").join(
            sql.SQL("({} IS NULL OR {})").format(sql.Identifier(c.name), chk) for c, chk in checks
        ) if checks else sql.SQL("true")
        casts = sql.SQL(", ").join(
            sql.SQL("{}::{}").format(sql.Identifier(c.name), sql.SQL(c.kind.value))
            if c.kind is not contract.Kind.TEXT else sql.Identifier(c.name)
            for c in src.table.columns
        )
        names = sql.SQL(", ").join(sql.Identifier(c) for c in src.table.column_names)
        fails = sql.SQL(", ").join(
            sql.SQL("CASE WHEN {} IS NOT NULL AND NOT {} THEN {} END").format(
                sql.Identifier(c.name), chk,
                sql.Literal(f"{_TYPE_RULE[c.kind]}:{c.name}"),
            )
            for c, chk in checks
        )
        with conn.transaction():
            conn.execute(
                sql.SQL(
                    "INSERT INTO {stg}.{typed} (line_no, {names}) OVERRIDING SYSTEM VALUE "
                    "SELECT line_no, {casts} FROM {stg}.{raw} WHERE {ok}"
                ).format(stg=stg, typed=sql.Identifier(staged.table_name), names=names,
                         casts=casts, raw=sql.Identifier(raw), ok=ok)
            )
            cur = conn.execute(
                sql.SQL(
                    "INSERT INTO {stg}.{rej} (phase, table_name, source_file, line_no,"
                    " failed_rules, record) SELECT 'stage', {tname}, {fname}, line_no,"
                    " array_remove(ARRAY[{fails}], NULL), to_jsonb(r) - 'line_no' - '_trailer'"
                    " FROM {stg}.{raw} r WHERE NOT ({ok})"
                ).format(stg=stg, rej=sql.Identifier(rejects_table(self.run_id)),
                         tname=sql.Literal(src.table.name), fname=sql.Literal(src.path.name),
                         fails=fails, raw=sql.Identifier(raw), ok=ok)
            )
            staged.type_rejects = cur.rowcount
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(stg, sql.Identifier(raw))
            ).fetchone()
            staged.rows = int(row[0]) if row else 0
            conn.execute(sql.SQL("DROP TABLE {}.{}").format(stg, sql.Identifier(raw)))

    def _stage_one(self, conn: psycopg.Connection, staged: StagedPart) -> None:
        src, part = staged.src, staged.part
        try:
            staged.rows = self._copy(conn, src, part, staged.table_name, typed=True, rules=True)
            staged.rules_checked = True
        except _STRUCTURAL as exc:
            raise _input_error(src, part, exc) from exc
        except pgerr.CheckViolation as exc:
            if exc.diag.constraint_name == _TRAILER_CHECK:
                raise _input_error(src, part, exc) from exc
            self._slow_path(conn, staged)
        except (*_TYPE_ERRORS, pgerr.NotNullViolation):
            self._slow_path(conn, staged)

    def _worker(self, units: queue.Queue[StagedPart], errors: list[BaseException]) -> None:
        try:
            conn = connect(self.settings, f"warehouse_etl run {self.run_id} stage")
        except BaseException as exc:
            errors.append(exc)
            self._stop.set()
            return
        with conn:
            conn.execute("SET DateStyle = 'ISO, YMD'")
            while not self._stop.is_set():
                try:
                    staged = units.get_nowait()
                except queue.Empty:
                    return
                try:
                    self._stage_one(conn, staged)
                except psycopg.Error as exc:
                    errors.append(DatabaseError(f"staging {staged.src.path} failed: {exc}"))
                    errors[-1].__cause__ = exc
                    self._stop.set()
                except BaseException as exc:
                    errors.append(exc)
                    self._stop.set()

    def run(self, files: list[extract.SourceFile]) -> list[StagedPart]:
        """Stage every part of every file; the biggest parts go first to balance workers."""
        units = [
            StagedPart(src, part, part_table(self.run_id, src.table.name, part.index))
            for src in files
            for part in src.parts
        ]
        todo: queue.Queue[StagedPart] = queue.Queue()
        for unit in sorted(units, key=lambda u: -(u.part.length or u.src.size)):
            todo.put(unit)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=self._worker, args=(todo, errors), daemon=True)
            for _ in range(min(self.settings.workers, len(units)))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            # Report the first genuine failure, not the "stopped" echoes it caused.
            real = [e for e in errors if type(e) is not EtlError] or errors
            raise real[0]
        return units
