"""Batch metrics for a Prometheus Pushgateway (a loader is too short-lived to scrape).

Names match the alert rules shipped by the monitoring role (``etl_errors_total``,
``etl_quality_score``...). pushadd (POST) is used so a failed run does not
erase ``etl_last_success_timestamp_seconds`` left by the last good one.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, pushadd_to_gateway

from . import jsonlog

JOB = "warehouse_etl"
log = jsonlog.get("metrics")


class BatchMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.read = Counter("etl_records_read", "Rows read from input files",
                            ["table"], registry=self.registry)
        self.loaded = Counter("etl_records_loaded", "Rows loaded into the warehouse",
                              ["table"], registry=self.registry)
        self.rejected = Counter("etl_records_rejected", "Rows sent to quarantine",
                                ["table"], registry=self.registry)
        self.errors = Counter("etl_errors", "Failed batches by kind of failure",
                              ["kind"], registry=self.registry)
        self.quality = Gauge("etl_quality_score", "Quality score of the last batch (0-100)",
                             registry=self.registry)
        self.duration = Gauge("etl_batch_duration_seconds", "Duration of the last batch",
                              registry=self.registry)
        self.success_ts: Gauge | None = None

    def record_counts(self, table: str, read: int, loaded: int, rejected: int) -> None:
        self.read.labels(table=table).inc(read)
        self.loaded.labels(table=table).inc(loaded)
        self.rejected.labels(table=table).inc(rejected)

    def record_error(self, kind: str) -> None:
        self.errors.labels(kind=kind).inc()

    def record_success(self) -> None:
        self.errors.labels(kind="none").inc(0)
        self.success_ts = Gauge("etl_last_success_timestamp_seconds",
                                "Unix time of the last successful batch",
                                registry=self.registry)
        self.success_ts.set(time.time())

    def push(self, url: str | None) -> bool:
        """Push if a gateway is configured; a metrics outage never fails a load."""
        if not url:
            return False
        try:
            pushadd_to_gateway(url, job=JOB, registry=self.registry, timeout=10)
        except Exception as exc:
            log.warning("pushgateway push failed", extra={"url": url, "error": str(exc)})
            return False
        return True
