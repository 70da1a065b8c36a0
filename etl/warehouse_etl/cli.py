"""The ``etl`` command.

Exit codes let a scheduler tell outcomes apart without parsing output:
0 success (including "already loaded"), 1 unexpected, 2 usage, 3 batch
rejected over the threshold, 4 input error, 5 database or connection error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from . import __version__, generate, jsonlog, ledger, schema
from .config import load_settings
from .db import connect
from .errors import ConfigError, DatabaseError, EtlError
from .load import LoadOptions, load_batch
from .metrics import BatchMetrics

log = jsonlog.get("cli")


class ProgressBar:
    """A one-line bar on a terminal; silent when stderr is a pipe or a log file."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self._last = 0.0
        self._phase = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase == self._phase and now - self._last < 0.2 and done < total:
            return
        self._last, self._phase = now, phase
        frac = min(1.0, done / total) if total else 1.0
        width = 30
        fill = int(frac * width)
        self.stream.write(
            f"\r{phase:<9} [{'#' * fill}{'.' * (width - fill)}] {frac:6.1%} "
            f"{done / 1e6:9.1f}/{total / 1e6:.1f} MB"
        )
        self.stream.flush()

    def close(self) -> None:
        if self._phase:
            self.stream.write("\n")
            self.stream.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="etl",
        description="Load TPC-H shaped sales extracts into the PostgreSQL warehouse. "
        "Connection: ETL_DSN or the libpq variables (PGHOST, PGPORT, PGUSER, PGDATABASE, "
        "PGPASSFILE, PGSSLMODE...); passwords are never taken as arguments.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--dsn-env", metavar="NAME",
                   help="read the connection string from this environment variable "
                   "instead of ETL_DSN")
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    # The same options after the subcommand (``etl load DIR --dsn-env X``).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn-env", metavar="NAME", default=argparse.SUPPRESS,
                        help="environment variable holding the connection string")
    common.add_argument("--log-level", default=argparse.SUPPRESS,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("migrate", parents=[common], help="create or upgrade the warehouse schema")
    m.add_argument("--json", action="store_true", help='print {"applied": [...], "current": ...}')

    ld = sub.add_parser("load", parents=[common], help="load one batch directory")
    ld.add_argument("batch_dir", type=Path)
    ld.add_argument("--batch-id", help="ledger id of the batch (default: directory name)")
    ld.add_argument("--max-reject-ratio", type=float,
                    help="fail the batch when rejected/read exceeds this "
                    "(default ETL_MAX_REJECT_RATIO or 0.05)")
    ld.add_argument("--no-progress", action="store_true", help="never draw a progress bar")

    g = sub.add_parser("generate", parents=[common], help="generate a TPC-H batch with tpchgen-cli")
    g.add_argument("--scale-factor", "-s", type=float, required=True)
    g.add_argument("--output", "-o", type=Path, required=True)
    g.add_argument("--format", choices=["tbl", "csv"], default="tbl")
    g.add_argument("--parts", type=int, help="split orders/line items into N batches")
    g.add_argument("--part", type=int, help="generate batch K of --parts (1-based)")

    s = sub.add_parser("status", parents=[common], help="recent batches from the ledger")
    s.add_argument("--limit", type=int, default=10)
    s.add_argument("--json", action="store_true")
    return p


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str, indent=None) + "\n")


def _cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings(dsn_env=args.dsn_env)
    with connect(settings, "warehouse_etl migrate") as conn:
        result = schema.migrate(conn, settings)
    log.info("migrations", extra={"applied": result.applied, "current": result.current,
                                  "schema": settings.schema})
    if args.json:
        _print_json({"applied": result.applied, "current": result.current})
    else:
        done = ", ".join(result.applied) if result.applied else "nothing to apply"
        sys.stdout.write(f"schema {settings.schema} at {result.current}: {done}\n")
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    settings = load_settings(dsn_env=args.dsn_env, max_reject_ratio=args.max_reject_ratio)
    metrics = BatchMetrics()
    bar = ProgressBar() if sys.stderr.isatty() and not args.no_progress else None
    try:
        summary = load_batch(settings, LoadOptions(args.batch_dir, args.batch_id, bar), metrics)
    except EtlError as exc:
        if bar:
            bar.close()
        metrics.push(settings.pushgateway_url)
        _print_json({"batch_id": args.batch_id or args.batch_dir.resolve().name,
                     "status": "rejected" if exc.exit_code == 3 else "failed",
                     "error_kind": exc.kind, "error": str(exc)})
        raise
    if bar:
        bar.close()
    metrics.push(settings.pushgateway_url)
    _print_json(summary)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    paths = generate.generate(args.scale_factor, args.output, args.format, args.parts, args.part)
    _print_json({"output": str(args.output), "files": [p.name for p in paths]})
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    settings = load_settings(dsn_env=args.dsn_env)
    with connect(settings, "warehouse_etl status") as conn:
        if schema.current_version(conn, settings) is None:
            raise DatabaseError(f"schema {settings.schema} is not migrated: run `etl migrate`")
        rows = ledger.recent(conn, settings, args.limit)
    if args.json:
        _print_json(rows)
        return 0
    out = sys.stdout
    out.write(f"{'run':>5} {'batch':<24} {'status':<10} {'read':>10} {'loaded':>10} "
              f"{'rejected':>9} {'score':>6} {'secs':>8}  started\n")
    for r in rows:
        out.write(
            f"{r['run_id']:>5} {str(r['batch_id'])[:24]:<24} {r['status']:<10} "
            f"{r['rows_read'] or 0:>10} {r['rows_loaded'] or 0:>10} {r['rows_rejected'] or 0:>9} "
            f"{r['quality_score'] or '':>6} {r['duration_seconds'] or '':>8}  {r['started_at']}\n"
        )
    return 0


COMMANDS = {
    "migrate": _cmd_migrate,
    "load": _cmd_load,
    "generate": _cmd_generate,
    "status": _cmd_status,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    jsonlog.setup(args.log_level)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        log.error("usage error", extra={"error": str(exc)})
        sys.stderr.write(f"etl: {exc}\n")
        return exc.exit_code
    except EtlError as exc:
        log.error("failed", extra={"kind": exc.kind, "error": str(exc)})
        sys.stderr.write(f"etl: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log.exception("unexpected error")
        sys.stderr.write(f"etl: unexpected error: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
