#!/usr/bin/python3
# Copyright: warehouse-ops contributors
# Apache License 2.0
"""Logical backups of the warehouse: pg_dump -Fc on a timer, and their care.

    wops-pgdump run                  dump now, write its checksum, then clean up
    wops-pgdump list [--json]        the dumps, newest first, with what keeps each
    wops-pgdump validate [FILE...]   checksum and pg_restore --list of each (default: all)
    wops-pgdump restore FILE --target-db NAME [--create] [--jobs N] [--user ROLE]
                                     (objects owned by the restoring role, no grants,
                                     no extensions unless --with-privileges/--with-extensions)
    wops-pgdump cleanup [--dry-run]  apply the retention

Retention: the newest `retention_daily` dumps (30), plus the first dump of
each of the last `retention_monthly` months (12) as monthly archives.
Settings come from /etc/warehouse-ops/pgdump.json (the pg_dump_backup role);
the password from the running user's ~/.pgpass. Exit status: 0 success,
1 a dump, validation or restore failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG = Path("/etc/warehouse-ops/pgdump.json")
NAME_RE = re.compile(r"^(?P<db>[A-Za-z0-9_]+)-(?P<stamp>\d{8}T\d{6}Z)\.dump$")


@dataclass(frozen=True)
class Dump:
    path: Path
    database: str
    taken: dt.datetime

    @property
    def checksum_path(self) -> Path:
        return self.path.with_suffix(".dump.sha256")


def find_dumps(directory: Path, database: str) -> list[Dump]:
    """The dumps of a database in a directory, newest first."""
    dumps = []
    for path in directory.glob(f"{database}-*.dump"):
        match = NAME_RE.match(path.name)
        if match and match.group("db") == database:
            taken = dt.datetime.strptime(match.group("stamp"), "%Y%m%dT%H%M%SZ").replace(
                tzinfo=dt.UTC)
            dumps.append(Dump(path, database, taken))
    return sorted(dumps, key=lambda d: d.taken, reverse=True)


def retention(dumps: list[Dump], daily: int, monthly: int) -> dict[Path, str]:
    """Why each kept dump is kept ('daily', 'monthly'); absent ones may go.

    daily: the newest N dumps. monthly: the oldest dump of each of the newest
    M calendar months that have dumps (the month's archive).
    """
    keep: dict[Path, str] = {}
    for dump in dumps[:daily]:
        keep[dump.path] = "daily"
    first_of_month: dict[tuple[int, int], Dump] = {}
    for dump in dumps:  # newest first: the last one seen is the month's first
        first_of_month[(dump.taken.year, dump.taken.month)] = dump
    for month in sorted(first_of_month, reverse=True)[:monthly]:
        path = first_of_month[month].path
        keep[path] = "daily+monthly" if keep.get(path) == "daily" else "monthly"
    return keep


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _libpq_env(cfg: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PGHOST": str(cfg["host"]), "PGPORT": str(cfg["port"]),
                "PGUSER": str(cfg["user"]), "PGSSLMODE": str(cfg["sslmode"]),
                "PGCONNECT_TIMEOUT": "15", "PGAPPNAME": "wops-pgdump"})
    if cfg.get("sslrootcert"):
        env["PGSSLROOTCERT"] = str(cfg["sslrootcert"])
    return env


def cmd_run(cfg: dict[str, Any], bindir: str) -> int:
    directory = Path(cfg["directory"])
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    final = directory / f"{cfg['database']}-{stamp}.dump"
    partial = final.with_suffix(".dump.partial")
    started = dt.datetime.now(dt.UTC)
    proc = subprocess.run(
        [f"{bindir}/pg_dump", "--format=custom", f"--compress={cfg['compress']}",
         f"--dbname={cfg['database']}", f"--file={partial}", "--no-password"],
        env=_libpq_env(cfg), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        sys.stderr.write(f"pg_dump of {cfg['database']} failed: {proc.stderr.strip()}\n")
        return 1
    checksum = sha256(partial)
    partial.rename(final)
    Dump(final, cfg["database"], started).checksum_path.write_text(f"{checksum}  {final.name}\n")
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    sys.stdout.write(json.dumps({"dump": str(final), "bytes": final.stat().st_size,
                                 "seconds": round(seconds, 1), "sha256": checksum}) + "\n")
    return cmd_cleanup(cfg, dry_run=False)


def validate(dump: Dump, bindir: str) -> str:
    """'' when the dump is intact and readable by pg_restore; else what is wrong."""
    if not dump.checksum_path.exists():
        return "no checksum file"
    expected = dump.checksum_path.read_text().split()[0]
    if sha256(dump.path) != expected:
        return "checksum mismatch"
    proc = subprocess.run([f"{bindir}/pg_restore", "--list", str(dump.path)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return f"pg_restore --list failed: {proc.stderr.strip()[:300]}"
    if "TABLE DATA" not in proc.stdout:
        return "the archive holds no table data"
    return ""


def cmd_validate(cfg: dict[str, Any], bindir: str, files: list[str]) -> int:
    dumps = find_dumps(Path(cfg["directory"]), cfg["database"])
    if files:
        wanted = {Path(f).resolve() for f in files}
        dumps = [d for d in dumps if d.path.resolve() in wanted]
        unknown = wanted - {d.path.resolve() for d in dumps}
        if unknown:
            sys.stderr.write(f"validate: not dumps here: {sorted(map(str, unknown))}\n")
            return 2
    bad = 0
    for dump in dumps:
        problem = validate(dump, bindir)
        sys.stdout.write(f"{dump.path.name}: {problem or 'ok'}\n")
        bad += bool(problem)
    if not dumps:
        sys.stdout.write("no dumps\n")
    return 1 if bad else 0


def cmd_list(cfg: dict[str, Any], as_json: bool) -> int:
    dumps = find_dumps(Path(cfg["directory"]), cfg["database"])
    keep = retention(dumps, int(cfg["retention_daily"]), int(cfg["retention_monthly"]))
    rows = [{"file": d.path.name, "taken": d.taken.isoformat(), "bytes": d.path.stat().st_size,
             "kept_as": keep.get(d.path, "expires")} for d in dumps]
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
    else:
        for r in rows:
            sys.stdout.write(f"{r['file']}  {r['bytes']:>14}  {r['kept_as']}\n")
    return 0


def cmd_cleanup(cfg: dict[str, Any], dry_run: bool) -> int:
    dumps = find_dumps(Path(cfg["directory"]), cfg["database"])
    keep = retention(dumps, int(cfg["retention_daily"]), int(cfg["retention_monthly"]))
    for dump in dumps:
        if dump.path in keep:
            continue
        sys.stdout.write(f"{'would remove' if dry_run else 'removed'} {dump.path.name}\n")
        if not dry_run:
            dump.path.unlink()
            dump.checksum_path.unlink(missing_ok=True)
    return 0


def restore_list(listing: str, with_extensions: bool) -> str:
    """pg_restore --list output, without the extensions unless asked for.

    Creating most extensions needs a superuser; the postgresql role creates
    them in every database it manages, and the dump's objects do not depend
    on who created them.
    """
    if with_extensions:
        return listing
    kept = [line for line in listing.splitlines()
            if not re.search(r"^\d+; \d+ \d+ (EXTENSION|COMMENT - EXTENSION) ", line)]
    return "\n".join(kept) + "\n"


def cmd_restore(cfg: dict[str, Any], bindir: str, args: argparse.Namespace) -> int:
    dump = Path(args.file)
    problem = validate(Dump(dump, cfg["database"], dt.datetime.now(dt.UTC)), bindir)
    if problem:
        sys.stderr.write(f"refusing to restore {dump}: {problem}\n")
        return 1
    env = _libpq_env(cfg)
    if args.user:
        # The dump's own role only reads: restoring (creating a database,
        # its objects) takes a role that may, e.g. admin, with its password
        # from PGPASSWORD or the running user's ~/.pgpass.
        env["PGUSER"] = args.user
    if args.create:
        proc = subprocess.run([f"{bindir}/createdb", "--no-password", args.target_db],
                              env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.stderr.write(f"createdb {args.target_db} failed: {proc.stderr.strip()}\n")
            return 1
    listing = subprocess.run([f"{bindir}/pg_restore", "--list", str(dump)],
                             capture_output=True, text=True, check=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as handle:
        handle.write(restore_list(listing, args.with_extensions))
    try:
        proc = subprocess.run(
            [f"{bindir}/pg_restore", "--no-password", "--no-owner", "--exit-on-error",
             *([] if args.with_privileges else ["--no-acl"]),
             f"--jobs={args.jobs}", f"--use-list={handle.name}", f"--dbname={args.target_db}",
             str(dump)],
            env=env, capture_output=True, text=True, check=False)
    finally:
        os.unlink(handle.name)
    if proc.returncode != 0:
        sys.stderr.write(f"pg_restore into {args.target_db} failed: {proc.stderr.strip()}\n")
        return 1
    sys.stdout.write(f"restored {dump.name} into {args.target_db}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wops-pgdump", description=__doc__.splitlines()[0]
                                     if __doc__ else None)
    parser.add_argument("--config", type=Path, default=CONFIG)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="dump now, then apply the retention")
    ls = sub.add_parser("list", help="list the dumps")
    ls.add_argument("--json", action="store_true")
    val = sub.add_parser("validate", help="check dumps (checksum and pg_restore --list)")
    val.add_argument("files", nargs="*")
    res = sub.add_parser("restore", help="restore a dump into a database")
    res.add_argument("file")
    res.add_argument("--target-db", required=True)
    res.add_argument("--create", action="store_true", help="create the database first")
    res.add_argument("--jobs", type=int, default=2)
    res.add_argument("--user", help="PostgreSQL role to restore as (default: the dump's own "
                     "role, which only reads); its password from PGPASSWORD or ~/.pgpass")
    res.add_argument("--with-extensions", action="store_true",
                     help="also create the dump's extensions (needs a superuser)")
    res.add_argument("--with-privileges", action="store_true",
                     help="also restore grants and default privileges (needs their roles' "
                     "membership); by default the restored objects belong to the restoring "
                     "role and carry no grants")
    cl = sub.add_parser("cleanup", help="apply the retention")
    cl.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    try:
        cfg: dict[str, Any] = json.loads(args.config.read_text())
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read {args.config}: {exc}")
    if args.command == "list":
        return cmd_list(cfg, args.json)
    if args.command == "cleanup":
        return cmd_cleanup(cfg, args.dry_run)
    # The PostgreSQL client binaries matching the server (pg_dump_backup writes it).
    bindir = str(cfg.get("bindir") or "")
    if not bindir:
        parser.error(f"{args.config} sets no 'bindir' (the PostgreSQL client binaries' "
                     "directory, such as /usr/lib/postgresql/<version>/bin)")
    if args.command == "run":
        return cmd_run(cfg, bindir)
    if args.command == "validate":
        return cmd_validate(cfg, bindir, args.files)
    return cmd_restore(cfg, bindir, args)


if __name__ == "__main__":
    sys.exit(main())
