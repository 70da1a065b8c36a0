"""Airflow 3 DAG: load every new batch directory from the incoming area, in order.

Deployed by the Airflow role next to an installed ``warehouse-ops`` package.
Parsing this file has no side effects: the connection, the Variable and the
directory are only read when a task runs.

Configuration (first match wins):
* DAG params ``incoming_dir`` / ``conn_id`` / ``ready_marker`` (trigger with conf);
* Airflow Variable ``warehouse_etl_incoming_dir``;
* environment ``WAREHOUSE_ETL_INCOMING_DIR`` / ``WAREHOUSE_ETL_CONN_ID`` (the
  Airflow role sets both in the services' environment);
* connection id ``warehouse``. The incoming directory has no default: a run
  with none of the above set fails its first task and says so.
"""

# Imports of the package and of Airflow runtime APIs live inside the tasks, so
# parsing this file stays fast and touches neither the database nor Variables.
# ruff: noqa: PLC0415

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task  # type: ignore[import-not-found, unused-ignore]

DEFAULT_CONN_ID = os.environ.get("WAREHOUSE_ETL_CONN_ID", "warehouse")
ENV_INCOMING = os.environ.get("WAREHOUSE_ETL_INCOMING_DIR", "")


def _dsn(conn_id: str) -> str:
    """An Airflow connection as a libpq DSN; the password stays in memory."""
    from airflow.sdk import Connection  # type: ignore[import-not-found, unused-ignore]
    from psycopg.conninfo import make_conninfo

    conn = Connection.get(conn_id)
    extra: dict[str, Any] = dict(conn.extra_dejson or {})
    params = {k: v for k, v in {
        "host": conn.host, "port": conn.port, "user": conn.login,
        "password": conn.password, "dbname": conn.schema,
    }.items() if v}
    for key in ("sslmode", "sslrootcert", "sslcert", "sslkey", "options",
                "application_name", "target_session_attrs"):
        if key in extra:
            params[key] = extra[key]
    return make_conninfo("", **params)


def _incoming(params: dict[str, Any]) -> str:
    if params.get("incoming_dir"):
        return str(params["incoming_dir"])
    from airflow.exceptions import AirflowFailException  # type: ignore[import-not-found, unused-ignore]
    from airflow.sdk import Variable  # type: ignore[import-not-found, unused-ignore]

    incoming = str(Variable.get("warehouse_etl_incoming_dir", default=ENV_INCOMING) or "")
    if not incoming:
        raise AirflowFailException(
            "no incoming directory: set the DAG param incoming_dir, the Airflow Variable "
            "warehouse_etl_incoming_dir or WAREHOUSE_ETL_INCOMING_DIR")
    return incoming


def _settings(params: dict[str, Any]) -> Any:
    from warehouse_etl.config import load_settings

    env = {**os.environ, "ETL_DSN": _dsn(str(params.get("conn_id") or DEFAULT_CONN_ID))}
    return load_settings(env=env)


@dag(  # type: ignore[untyped-decorator, unused-ignore]
    dag_id="warehouse_etl",
    description="Load TPC-H shaped sales batches into the warehouse star schema",
    schedule=timedelta(minutes=15),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["warehouse", "etl"],
    params={
        "incoming_dir": Param("", type="string",
                              description="directory holding one sub-directory per batch"),
        "conn_id": Param(DEFAULT_CONN_ID, type="string"),
        "ready_marker": Param("", type="string",
                              description="only load batches containing this file (e.g. _READY)"),
    },
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
)
def warehouse_etl() -> None:
    @task  # type: ignore[untyped-decorator, unused-ignore]
    def find_pending(params: dict[str, Any] | None = None) -> list[str]:
        from pathlib import Path

        from warehouse_etl.db import connect
        from warehouse_etl.incoming import pending_batches

        params = params or {}
        settings = _settings(params)
        with connect(settings, "warehouse_etl airflow") as conn:
            found = pending_batches(conn, settings, Path(_incoming(params)),
                                    params.get("ready_marker") or None)
        return [str(p) for p in found]

    @task  # type: ignore[untyped-decorator, unused-ignore]
    def load_in_order(batches: list[str], params: dict[str, Any] | None = None
                      ) -> list[dict[str, Any]]:
        """Sequential on purpose: a later batch must not overtake a failed one."""
        from pathlib import Path

        from airflow.exceptions import AirflowFailException  # type: ignore[import-not-found, unused-ignore]
        from warehouse_etl import jsonlog
        from warehouse_etl.errors import BatchRejectedError, InputError
        from warehouse_etl.load import LoadOptions, load_batch
        from warehouse_etl.metrics import BatchMetrics

        jsonlog.setup()
        settings = _settings(params or {})
        results = []
        for batch in batches:
            metrics = BatchMetrics()
            try:
                results.append(load_batch(settings, LoadOptions(Path(batch)), metrics))
            except (BatchRejectedError, InputError) as exc:
                # Retrying cannot fix the data: fail now, the ledger has the details.
                raise AirflowFailException(f"{batch}: {exc}") from exc
            finally:
                metrics.push(settings.pushgateway_url)
        return results

    load_in_order(find_pending())


warehouse_etl()
