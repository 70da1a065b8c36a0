"""Opening connections, with errors that name the setting but never the password."""

from __future__ import annotations

import psycopg

from .config import Settings
from .errors import DatabaseError


def connect(settings: Settings, application_name: str = "warehouse_etl") -> psycopg.Connection:
    """Connect in autocommit mode; callers open transactions explicitly.

    Autocommit by default keeps the batch transaction boundaries visible in
    the code (``with conn.transaction()``) instead of implied by the driver.
    """
    try:
        conn = psycopg.connect(
            settings.dsn,
            autocommit=True,
            application_name=application_name,
            connect_timeout=settings.connect_timeout,
        )
    except psycopg.Error as exc:
        # libpq messages can echo host/port/user but not the password.
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(
            f"cannot connect using {settings.dsn_source} ({settings.masked_dsn}): {detail}"
        ) from exc
    # A loader killed mid-statement leaves its backend running until it next
    # talks to the client; checking the socket makes such orphans abort fast.
    conn.execute("SET client_connection_check_interval = '1s'")
    return conn
