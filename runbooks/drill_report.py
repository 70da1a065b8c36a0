"""What a DR drill run amounts to: phases, verdict, report files, metrics.

Kept apart from the ansible-runner driver (dr_drill.py) so that each piece
can be checked without running a drill: the events of a run go in, a
report and an exit code come out.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

# Exit codes of runbooks/dr_drill.py (documented in runbooks/README.md).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TARGETS_MISSED = 3
EXIT_PUSH_FAILED = 4

DEFAULT_RTO_TARGET = 1800.0  # the wiki's 30 minutes
DEFAULT_RPO_TARGET = 300.0  # 5 minutes with WAL archiving

_PHASE_RE = re.compile(r"^Drill (\d+)/(\d+) - (.+)$")


@dataclass
class Phase:
    number: int
    name: str
    started: float
    ended: float = 0.0
    status: str = "ok"
    tasks: int = 0

    @property
    def seconds(self) -> float:
        return round(max(self.ended - self.started, 0.0), 3)


@dataclass
class Collector:
    """Gathers ansible-runner events as they arrive (its event_handler)."""

    phases: list[Phase] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    artifact: dict[str, Any] = field(default_factory=dict)
    finished: float = 0.0

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {}) or {}
        when = _timestamp(event.get("created"))
        if kind == "playbook_on_play_start":
            self._close_phase(when)
            match = _PHASE_RE.match(str(data.get("play", "")))
            if match:
                self.phases.append(Phase(int(match.group(1)), match.group(3), when))
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            self._task(kind, data)
        elif kind == "playbook_on_stats":
            self._close_phase(when)
            self.finished = when
            self.artifact = dict(data.get("artifact_data") or {})
            self.stats = {k: data.get(k, {}) for k in ("ok", "changed", "failures", "dark")}
        return True  # keep the event in the runner's artifacts too

    @staticmethod
    def _where(data: dict[str, Any]) -> str:
        """The host a task ran on: the delegate when the play host delegated it."""
        host = str(data.get("host", ""))
        delegated = ((data.get("res") or {}).get("_ansible_delegated_vars") or {})
        target = str(delegated.get("ansible_delegated_host") or delegated.get("ansible_host") or "")
        return f"{host} → {target}" if target and target != host else host

    def _task(self, kind: str, data: dict[str, Any]) -> None:
        ignored = bool(data.get("ignore_errors"))
        duration = float(data.get("duration") or 0.0)
        self.tasks.append({"task": data.get("task", ""), "host": self._where(data),
                           "seconds": round(duration, 3), "status": kind.rsplit("_", 1)[-1]})
        if self.phases:
            self.phases[-1].tasks += 1
        if kind != "runner_on_ok" and not ignored:
            result = data.get("res") or {}
            message = result.get("msg") or result.get("stderr") or result.get("reason") or ""
            self.failures.append({"task": str(data.get("task", "")),
                                  "host": self._where(data),
                                  "message": str(message)[:2000]})
            if self.phases:
                self.phases[-1].status = "failed"

    def _close_phase(self, when: float) -> None:
        if self.phases and not self.phases[-1].ended:
            self.phases[-1].ended = when


def _timestamp(created: Any) -> float:
    """ansible-runner's 'created' (ISO 8601, UTC, no zone) as epoch seconds."""
    if not created:
        return dt.datetime.now(dt.UTC).timestamp()
    parsed = dt.datetime.fromisoformat(str(created))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


@dataclass
class Verdict:
    status: str  # verified, failed, targets-missed
    exit_code: int
    reasons: list[str]
    rto_seconds: float | None
    rpo_seconds: float | None
    rto_target_seconds: float
    rpo_target_seconds: float
    data_verified: bool


def judge(rc: int, result: dict[str, Any] | None, failures: list[dict[str, str]],
          rto_target: float | None = None, rpo_target: float | None = None) -> Verdict:
    """The drill's outcome from the playbook's exit code and result.

    Targets given here (the command line) win over the environment's, which
    the playbook reports in its result; the defaults are the wiki's.
    """
    result = result or {}
    rto_t = float(rto_target if rto_target is not None
                  else result.get("rto_target_seconds", DEFAULT_RTO_TARGET))
    rpo_t = float(rpo_target if rpo_target is not None
                  else result.get("rpo_target_seconds", DEFAULT_RPO_TARGET))
    rto = _number(result.get("rto_seconds"))
    rpo = _number(result.get("rpo_seconds"))
    verified = bool(result.get("verified"))
    reasons: list[str] = []
    evidence_missing = [str(e) for e in result.get("evidence_missing") or []]
    if not result:
        reasons.append("the drill ended before it produced a result")
    elif evidence_missing:
        # A figure not measured or nothing compared: never VERIFIED.
        verified = False
        reasons.extend(f"missing evidence: {e}" for e in evidence_missing)
    elif not verified:
        reasons.append("the restored copy or the repository failed verification")
    missed = []
    if rto is not None and rto > rto_t:
        missed.append(f"RTO {rto:.0f} s over the {rto_t:.0f} s target")
    if rpo is not None and rpo > rpo_t:
        missed.append(f"RPO {rpo:.0f} s over the {rpo_t:.0f} s target")
    reasons.extend(missed)
    for failure in failures:
        if not any(failure["message"][:80] in r for r in reasons):
            reasons.append(f"{failure['task']} on {failure['host']}: {failure['message'][:300]}")
    if result and verified and not missed:
        # A verified drill within targets passes even if the playbook's own
        # (stricter) target assertion used other numbers.
        return Verdict("verified", EXIT_OK, [], rto, rpo, rto_t, rpo_t, True)
    if result and verified and missed:
        return Verdict("targets-missed", EXIT_TARGETS_MISSED, reasons, rto, rpo, rto_t, rpo_t, True)
    if rc == 0 and not reasons:
        reasons.append("the playbook succeeded without a verified result")
    return Verdict("failed", EXIT_FAILED, reasons, rto, rpo, rto_t, rpo_t, verified)


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def build_report(collector: Collector, verdict: Verdict, rc: int,
                 inventory: str) -> dict[str, Any]:
    result = collector.artifact.get("dr_drill") or {}
    slowest = sorted(collector.tasks, key=lambda t: t["seconds"], reverse=True)[:10]
    return {
        "drill_id": result.get("drill_id", ""),
        "environment": result.get("environment", ""),
        "inventory": inventory,
        "status": verdict.status,
        "exit_code": verdict.exit_code,
        "playbook_rc": rc,
        "reasons": verdict.reasons,
        "rto_seconds": verdict.rto_seconds,
        "rto_target_seconds": verdict.rto_target_seconds,
        "rpo_seconds": verdict.rpo_seconds,
        "rpo_target_seconds": verdict.rpo_target_seconds,
        "data_verified": verdict.data_verified,
        "phases": [dict(asdict(p), seconds=p.seconds) for p in collector.phases],
        "slowest_tasks": slowest,
        "failures": collector.failures,
        "result": result,
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_markdown(report: dict[str, Any]) -> str:
    result = report.get("result") or {}
    checks = result.get("checks") or {}
    lines = [
        f"# DR drill {report['drill_id'] or '(no id)'}: {report['status'].upper()}",
        "",
        f"- Environment: {report['environment'] or '-'} (inventory `{report['inventory']}`)",
        f"- Source {result.get('source', '-')}, repository {result.get('repository', '-')}, "
        f"restored onto {result.get('scratch', '-')}",
        f"- Backup set {result.get('backup_set', '-')}, recovery target "
        f"{result.get('target_time', '-')}, last replayed transaction "
        f"{result.get('last_replayed', '-')}",
        f"- **RTO {_fmt(report['rto_seconds'])} s** (target {report['rto_target_seconds']:.0f} s): "
        "drill start to restored server verified and answering queries",
        f"- **RPO {_fmt(report['rpo_seconds'])} s** (target {report['rpo_target_seconds']:.0f} s): "
        f"newest commit on the source ({result.get('source_last_commit') or '-'}) to newest "
        f"archived commit ({result.get('archive_last_commit') or '-'})",
        f"- Data verified: {'yes' if report['data_verified'] else 'NO'}; "
        f"{checks.get('tables', '-')} tables, {checks.get('total_rows', '-')} rows, "
        f"checksums {'equal' if checks.get('checksums_match') else 'not equal'}, "
        f"{checks.get('amcheck_indexes', '-')} indexes checked by amcheck, "
        f"markers missing {checks.get('markers_missing', '-')}, "
        f"unexpected {checks.get('markers_unexpected', '-')}, "
        f"repository verify {'ok' if checks.get('repository_verified') else 'FAILED'}",
        "",
        "| # | Phase | Seconds | Tasks | Status |",
        "|---|---|---:|---:|---|",
    ]
    for p in report["phases"]:
        lines.append(f"| {p['number']} | {p['name']} | {p['seconds']:.1f} | {p['tasks']} "
                     f"| {p['status']} |")
    if report["reasons"]:
        lines += ["", "## Why it did not pass", ""]
        lines += [f"- {r}" for r in report["reasons"]]
    if report["slowest_tasks"]:
        lines += ["", "## Slowest tasks", "", "| Task | Host | Seconds |", "|---|---|---:|"]
        for t in report["slowest_tasks"]:
            lines.append(f"| {t['task']} | {t['host']} | {t['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], directory: Path, stamp: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"dr-drill-{stamp}.json"
    md_path = directory / f"dr-drill-{stamp}.md"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path


def push_metrics(url: str, report: dict[str, Any], job: str = "wops_dr_drill") -> None:
    """Push the drill's outcome to a Prometheus Pushgateway (replaces the job's group)."""
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, value: float, **labels: str) -> None:
        g = Gauge(name, doc, list(labels), registry=registry)
        (g.labels(**labels) if labels else g).set(value)

    gauge("wops_dr_drill_success", "1 when the last drill verified the data within targets",
          1.0 if report["status"] == "verified" else 0.0)
    gauge("wops_dr_drill_data_verified", "1 when the restored copy matched the source",
          1.0 if report["data_verified"] else 0.0)
    if report["rto_seconds"] is not None:
        gauge("wops_dr_drill_rto_seconds", "Measured recovery time of the last drill",
              float(report["rto_seconds"]))
    if report["rpo_seconds"] is not None:
        gauge("wops_dr_drill_rpo_seconds", "Measured recovery point of the last drill",
              float(report["rpo_seconds"]))
    gauge("wops_dr_drill_rto_target_seconds", "RTO target", float(report["rto_target_seconds"]))
    gauge("wops_dr_drill_rpo_target_seconds", "RPO target", float(report["rpo_target_seconds"]))
    gauge("wops_dr_drill_last_run_timestamp_seconds", "When the last drill ended",
          dt.datetime.now(dt.UTC).timestamp())
    phase = Gauge("wops_dr_drill_phase_seconds", "Duration of each drill phase", ["phase"],
                  registry=registry)
    for p in report["phases"]:
        phase.labels(phase=p["name"]).set(float(p["seconds"]))
    grouping = {"environment": report["environment"] or "unknown"}
    push_to_gateway(url, job=job, registry=registry, grouping_key=grouping, timeout=10)
