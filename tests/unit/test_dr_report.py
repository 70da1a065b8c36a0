"""The drill driver's report: phases from runner events, verdict, files, metrics."""

from __future__ import annotations

import http.server
import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("drill_report", ROOT / "runbooks/drill_report.py")
assert _spec and _spec.loader
dr: Any = importlib.util.module_from_spec(_spec)
sys.modules["drill_report"] = dr
_spec.loader.exec_module(dr)


def _event(kind: str, created: str, **data: Any) -> dict[str, Any]:
    return {"event": kind, "created": created, "event_data": data}


RESULT = {"drill_id": "20261126T031500Z", "environment": "dev", "verified": True,
          "rto_seconds": 95.5, "rpo_seconds": 12.0, "rto_target_seconds": 1800,
          "rpo_target_seconds": 300, "source": "db1", "scratch": "scratch1",
          "checks": {"tables": 10, "total_rows": 86000, "checksums_match": True,
                     "amcheck_indexes": 14, "markers_missing": [], "markers_unexpected": [],
                     "repository_verified": True}}


def _run(result: dict[str, Any] | None, failed_task: bool = False) -> Any:
    c = dr.Collector()
    c(_event("playbook_on_play_start", "2026-11-26T03:15:00.000000", play="Check the inventory"))
    c(_event("playbook_on_play_start", "2026-11-26T03:15:01.000000",
             play="Drill 1/7 - discover the topology and the repository"))
    c(_event("runner_on_ok", "2026-11-26T03:15:02", task="Read", host="repo", duration=1.5))
    c(_event("playbook_on_play_start", "2026-11-26T03:15:04.500000",
             play="Drill 4/7 - restore the backup onto the scratch host"))
    if failed_task:
        c(_event("runner_on_failed", "2026-11-26T03:15:30", task="Restore the backup",
                 host="scratch1", duration=20.0, res={"msg": "checksum mismatch in file"}))
    c(_event("runner_on_failed", "2026-11-26T03:15:31", task="Probe", host="scratch1",
             ignore_errors=True, res={"msg": "ignored"}))
    c(_event("playbook_on_stats", "2026-11-26T03:16:04.500000",
             artifact_data={"dr_drill": result} if result else {}))
    return c


def test_phases_are_timed_from_play_starts() -> None:
    c = _run(RESULT)
    assert [(p.number, p.name, p.seconds) for p in c.phases] == [
        (1, "discover the topology and the repository", 3.5),
        (4, "restore the backup onto the scratch host", 60.0)]
    assert c.phases[0].tasks == 1 and c.failures == []
    assert c.artifact["dr_drill"]["drill_id"] == "20261126T031500Z"


def test_verdicts_and_exit_codes() -> None:
    ok = dr.judge(0, RESULT, [])
    assert (ok.status, ok.exit_code, ok.reasons) == ("verified", 0, [])
    slow = dr.judge(2, RESULT, [], rto_target=60)
    assert slow.exit_code == dr.EXIT_TARGETS_MISSED
    assert "RTO 96 s over the 60 s target" in slow.reasons[0]
    bad = dr.judge(2, dict(RESULT, verified=False), [])
    assert bad.exit_code == dr.EXIT_FAILED and "failed verification" in bad.reasons[0]
    c = _run(None, failed_task=True)
    none = dr.judge(2, None, c.failures)
    assert none.exit_code == dr.EXIT_FAILED
    assert any("checksum mismatch in file" in r for r in none.reasons)
    assert c.phases[-1].status == "failed"


def test_missing_evidence_is_never_verified() -> None:
    # Even a result that says verified, with an RPO the playbook could not
    # measure and nothing compared, fails, naming each piece of evidence.
    result = dict(RESULT, verified=True, rpo_seconds=None, evidence_missing=[
        "RPO: pg_waldump could not read the primary's WAL (permission denied)",
        "no table with rows was compared (0 tables, 0 rows in empty)"])
    verdict = dr.judge(0, result, [])
    assert (verdict.status, verdict.exit_code) == ("failed", dr.EXIT_FAILED)
    assert verdict.reasons == [
        "missing evidence: RPO: pg_waldump could not read the primary's WAL (permission denied)",
        "missing evidence: no table with rows was compared (0 tables, 0 rows in empty)"]
    assert verdict.rpo_seconds is None and verdict.data_verified is False


def test_report_files(tmp_path: Path) -> None:
    c = _run(RESULT)
    report = dr.build_report(c, dr.judge(0, RESULT, []), 0, "inventory/dev")
    json_path, md_path = dr.write_report(report, tmp_path, "20261126T031600Z")
    assert json.loads(json_path.read_text())["rto_seconds"] == 95.5
    md = md_path.read_text()
    assert md.startswith("# DR drill 20261126T031500Z: VERIFIED")
    assert "| 4 | restore the backup onto the scratch host | 60.0 | 1 | ok |" in md
    assert "**RTO 95.5 s** (target 1800 s)" in md


class _Gateway(http.server.BaseHTTPRequestHandler):
    bodies: list[tuple[str, str]] = []  # noqa: RUF012

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.bodies.append((self.path, self.rfile.read(length).decode()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture()
def gateway() -> Iterator[str]:
    _Gateway.bodies = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_metrics_reach_the_pushgateway(gateway: str) -> None:
    report = dr.build_report(_run(RESULT), dr.judge(0, RESULT, []), 0, "inventory/dev")
    dr.push_metrics(gateway, report)
    path, body = _Gateway.bodies[-1]
    assert path == "/metrics/job/wops_dr_drill/environment/dev"
    assert "wops_dr_drill_success 1.0" in body and "wops_dr_drill_rto_seconds 95.5" in body
    assert "wops_dr_drill_rpo_seconds 12.0" in body
    phase = 'wops_dr_drill_phase_seconds{phase="restore the backup onto the scratch host"}'
    assert f"{phase} 60.0" in body


def test_push_to_nowhere_raises_oserror() -> None:
    report = dr.build_report(_run(RESULT), dr.judge(0, RESULT, []), 0, "inventory/dev")
    with pytest.raises(OSError):
        dr.push_metrics("http://127.0.0.1:9", report)
