"""Runtime settings, read from the environment once.

Passwords never travel on the command line: the DSN comes from an environment
variable (``ETL_DSN`` or one named with ``--dsn-env``) or from libpq's own
variables (PGHOST, PGPASSFILE...), so it stays out of ``ps`` and shell history.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from psycopg import conninfo as pg_conninfo

from .errors import ConfigError

DEFAULT_SCHEMA = "warehouse"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


@dataclass(frozen=True)
class Settings:
    dsn: str
    dsn_source: str
    schema: str = DEFAULT_SCHEMA
    max_reject_ratio: float = 0.05
    pushgateway_url: str | None = None
    workers: int = 2
    date_min: dt.date = dt.date(1900, 1, 1)
    date_max: dt.date = dt.date(2099, 12, 31)
    connect_timeout: int = 10

    @property
    def staging_schema(self) -> str:
        return f"{self.schema}_staging"

    @property
    def masked_dsn(self) -> str:
        return mask_dsn(self.dsn)


def mask_dsn(dsn: str) -> str:
    """Render a DSN for logs and error messages with any password hidden."""
    if not dsn:
        return "(libpq environment)"
    try:
        params = pg_conninfo.conninfo_to_dict(dsn)
    except Exception:
        # Unparseable: show nothing that could contain a secret.
        return "(unparseable DSN)"
    if "password" in params:
        params["password"] = "***"  # noqa: S105 - a mask, not a secret
    return " ".join(f"{k}={v}" for k, v in params.items())


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: not a number: {raw!r}") from exc


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: not an integer: {raw!r}") from exc


def _date(env: Mapping[str, str], name: str, default: dt.date) -> dt.date:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: not a YYYY-MM-DD date: {raw!r}") from exc


def load_settings(
    env: Mapping[str, str] | None = None,
    dsn_env: str | None = None,
    max_reject_ratio: float | None = None,
) -> Settings:
    """Build settings from the environment; ``dsn_env`` names the DSN variable."""
    env = os.environ if env is None else env
    var = dsn_env or "ETL_DSN"
    if dsn_env and dsn_env not in env:
        raise ConfigError(f"--dsn-env {dsn_env}: environment variable is not set")
    dsn = env.get(var, "")
    source = var if dsn else "libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE...)"
    if dsn:
        try:
            pg_conninfo.conninfo_to_dict(dsn)
        except Exception as exc:
            raise ConfigError(f"{var}: not a valid connection string") from exc
    schema = env.get("ETL_SCHEMA", DEFAULT_SCHEMA) or DEFAULT_SCHEMA
    if not _IDENT.match(schema):
        raise ConfigError(f"ETL_SCHEMA: {schema!r} is not a lower-case identifier")
    ratio = (
        max_reject_ratio
        if max_reject_ratio is not None
        else _float(env, "ETL_MAX_REJECT_RATIO", 0.05)
    )
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"max reject ratio must be within [0, 1], got {ratio}")
    workers = _int(env, "ETL_WORKERS", 2)
    if workers < 1:
        raise ConfigError("ETL_WORKERS must be >= 1")
    date_min = _date(env, "ETL_DATE_MIN", dt.date(1900, 1, 1))
    date_max = _date(env, "ETL_DATE_MAX", dt.date(2099, 12, 31))
    if date_min > date_max:
        raise ConfigError("ETL_DATE_MIN is after ETL_DATE_MAX")
    return Settings(
        dsn=dsn,
        dsn_source=source,
        schema=schema,
        max_reject_ratio=ratio,
        pushgateway_url=env.get("ETL_PUSHGATEWAY_URL") or None,
        workers=workers,
        date_min=date_min,
        date_max=date_max,
        connect_timeout=_int(env, "ETL_CONNECT_TIMEOUT", 10),
    )
