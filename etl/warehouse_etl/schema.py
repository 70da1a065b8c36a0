"""Versioned, idempotent migrations of the warehouse schema.

Migrations are plain SQL files shipped in the package so the Ansible role and
a developer laptop apply byte-identical DDL; the checksum check catches a file
edited after it was applied, which would otherwise make environments drift.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from .config import Settings
from .errors import MigrationError

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql_text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql_text.encode()).hexdigest()


@dataclass(frozen=True)
class MigrateResult:
    applied: list[str]
    current: str | None


def available() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found = []
    for entry in resources.files("warehouse_etl").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(match.group(1), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions: {versions}")
    return found


def lock_key(settings: Settings, purpose: str) -> str:
    return f"warehouse_etl:{purpose}:{settings.schema}"


def migrate(conn: psycopg.Connection, settings: Settings) -> MigrateResult:
    """Apply pending migrations in one transaction under an advisory lock.

    One transaction means a failed migration leaves nothing half-applied; the
    lock makes concurrent runs (two Ansible hosts, a loader starting) queue up
    instead of racing on CREATE TABLE.
    """
    schema = sql.Identifier(settings.schema)
    migrations = available()
    applied_now: list[str] = []
    try:
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (lock_key(settings, "migrate"),),
            )
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(settings.staging_schema)
                )
            )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                    " version text PRIMARY KEY, name text NOT NULL,"
                    " checksum text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(schema)
            )
            rows = conn.execute(
                sql.SQL("SELECT version, name, checksum FROM {}.schema_migrations").format(schema)
            ).fetchall()
            done = {r[0]: (r[1], r[2]) for r in rows}
            known = {m.version for m in migrations}
            for version in sorted(set(done) - known):
                raise MigrationError(
                    f"migration {version} is applied in schema {settings.schema} "
                    "but not shipped with this package (newer database than code?)"
                )
            for mig in migrations:
                if mig.version in done:
                    if done[mig.version][1] != mig.checksum:
                        raise MigrationError(
                            f"migration {mig.version}_{mig.name}.sql was changed after it "
                            f"was applied (checksum {done[mig.version][1][:12]} in the "
                            f"database, {mig.checksum[:12]} on disk); add a new migration "
                            "instead of editing an applied one"
                        )
                    continue
                conn.execute(
                    sql.SQL("SET LOCAL search_path TO {}, pg_catalog").format(schema)
                )
                try:
                    conn.execute(mig.sql_text.encode())
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"migration {mig.version}_{mig.name}.sql failed: {exc}"
                    ) from exc
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {}.schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)"
                    ).format(schema),
                    (mig.version, mig.name, mig.checksum),
                )
                applied_now.append(mig.version)
    except psycopg.Error as exc:
        raise MigrationError(f"migrating schema {settings.schema} failed: {exc}") from exc
    return MigrateResult(applied_now, migrations[-1].version if migrations else None)


def current_version(conn: psycopg.Connection, settings: Settings) -> str | None:
    """The newest applied version, or None when the schema was never migrated."""
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{settings.schema}.schema_migrations",)
    ).fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute(
        sql.SQL("SELECT max(version) FROM {}.schema_migrations").format(
            sql.Identifier(settings.schema)
        )
    ).fetchone()
    return row[0] if row else None


def ensure_current(conn: psycopg.Connection, settings: Settings) -> None:
    """Refuse to load into a schema that is missing migrations."""
    latest = available()[-1].version
    have = current_version(conn, settings)
    if have != latest:
        raise MigrationError(
            f"schema {settings.schema} is at migration {have or 'none'}, "
            f"this package needs {latest}: run `etl migrate` first"
        )
