"""The restore horizon tool's decisions, from pgBackRest and pg_waldump output."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "pgbackrest_horizon", ROOT / "roles/pgbackrest/files/pgbackrest_horizon.py")
assert _spec and _spec.loader
hz: Any = importlib.util.module_from_spec(_spec)
sys.modules["pgbackrest_horizon"] = hz
_spec.loader.exec_module(hz)

_TX = "rmgr: Transaction len (rec/tot):     34/    34, tx:        725, "
_XLOG = "rmgr: XLOG        len (rec/tot):     98/    98, tx:          0, "
WALDUMP = "\n".join([
    _TX + "lsn: 0/05000238, prev 0/050001F8, desc: COMMIT 2026-11-26 03:07:05.080121 UTC",
    _XLOG + "lsn: 0/05000260, prev 0/05000238, desc: RESTORE_POINT before release 42",
    _TX + "lsn: 0/05000308, prev 0/050002C8, desc: ABORT 2026-11-26 03:07:06.000000 UTC",
    _TX + "lsn: 0/05000408, prev 0/05000308, desc: COMMIT 2026-11-26 03:07:05.990000 UTC; "
    "inval msgs: catcache 80",
    _XLOG + "lsn: 0/05000430, prev 0/05000408, desc: SWITCH",
])

INFO: list[dict[str, Any]] = [{
    "name": "warehouse",
    "archive": [{"id": "15-1", "min": "000000010000000000000001",
                 "max": "000000010000000000000006"}],
    "backup": [
        {"label": "20261126-030645F", "type": "full", "error": False,
         "timestamp": {"start": 1795662405, "stop": 1795662413},
         "lsn": {"start": "0/2000028", "stop": "0/3000050"},
         "info": {"size": 23177582, "repository": {"size": 2837024}}},
        {"label": "20261126-030645F_20261126-040000I", "type": "incr", "error": False,
         "timestamp": {"start": 1795666000, "stop": 1795666010},
         "lsn": {"start": "0/8000028", "stop": "0/9000050"},
         "info": {"size": 23177582, "repository": {"size": 100}}},
    ],
}]


def _utc(text: str) -> dt.datetime:
    return hz.parse_time(text)  # type: ignore[no-any-return]


def test_last_commit_and_restore_points_from_waldump() -> None:
    when, lsn = hz.last_commit(WALDUMP)
    assert when == _utc("2026-11-26T03:07:06+00:00") and lsn == "0/05000308"
    assert hz.restore_points(WALDUMP) == {"before release 42": "0/05000260"}
    assert hz.last_commit("rmgr: XLOG ... desc: SWITCH") is None


def test_lsn_and_segment_arithmetic() -> None:
    assert hz.parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert hz.format_lsn(hz.parse_lsn("0/5000300")) == "0/05000300"
    assert hz.segment_end_lsn("000000010000000000000004", 16 << 20) == 0x5000000
    assert hz.segment_end_lsn("0000000100000001000000FF", 16 << 20) == 0x200000000
    with pytest.raises(ValueError):
        hz.parse_lsn("nope")


def test_times_need_a_zone() -> None:
    assert _utc("2026-11-26 03:07:05+00") == _utc("2026-11-26T03:07:05Z")
    assert _utc("2026-11-26 05:07:05+02:00") == _utc("2026-11-26T03:07:05+00:00")
    with pytest.raises(ValueError, match="no time zone"):
        hz.parse_time("2026-11-26 03:07:05")


def _decide(kind: str, target: str, **kw: Any) -> Any:
    backups = hz.parse_backups(INFO)
    defaults: dict[str, Any] = {"last": hz.last_commit(WALDUMP), "wal_end": 0x7000000,
                                "point_lsn": None}
    defaults.update(kw)
    return hz.decide(backups, kind, target, **defaults)


def test_time_target_between_backup_and_last_commit_is_reachable() -> None:
    verdict = _decide("time", "2026-11-26T03:07:05.5+00:00")
    assert verdict.reachable and verdict.set == "20261126-030645F"
    assert verdict.last_commit_time == "2026-11-26T03:07:06.000000+00:00"


def test_time_target_at_or_beyond_the_last_archived_commit_is_refused() -> None:
    for target in ("2026-11-26T03:07:06+00:00", "2026-11-27T00:00:00+00:00"):
        verdict = _decide("time", target)
        assert not verdict.reachable and "beyond the archived WAL" in verdict.reason


def test_time_target_before_the_oldest_backup_is_refused() -> None:
    verdict = _decide("time", "2026-11-26T03:06:50+00:00")
    assert not verdict.reachable and "before the oldest backup ended" in verdict.reason


def test_time_target_picks_the_newest_backup_that_ended_a_second_before() -> None:
    late = dt.datetime.fromtimestamp(1795666011, dt.UTC).isoformat()
    verdict = _decide("time", late, last=(_utc("2026-11-27T00:00:00+00:00"), "0/A000000"))
    assert verdict.reachable and verdict.set == "20261126-030645F_20261126-040000I"
    exact = dt.datetime.fromtimestamp(1795666010.5, dt.UTC).isoformat()
    verdict = _decide("time", exact, last=(_utc("2026-11-27T00:00:00+00:00"), "0/A000000"))
    assert verdict.set == "20261126-030645F"


def test_lsn_and_name_targets() -> None:
    assert _decide("lsn", "0/5000300").reachable
    beyond = _decide("lsn", "0/9000300")
    assert not beyond.reachable and "archived up to 0/07000000" in beyond.reason
    assert not _decide("lsn", "0/1000000").reachable
    named = _decide("name", "before release 42", point_lsn="0/05000260")
    assert named.reachable and named.restore_point_lsn == "0/05000260"
    missing = _decide("name", "nope")
    assert not missing.reachable and "no restore point named 'nope'" in missing.reason


def test_latest_needs_only_a_good_backup() -> None:
    assert _decide("latest", "", last=None, wal_end=None).set == "20261126-030645F_20261126-040000I"
    broken = [dict(b, error=True) for b in INFO[0]["backup"]]
    verdict = hz.decide(hz.parse_backups([dict(INFO[0], backup=broken)]), "latest", "",
                        last=None, wal_end=None, point_lsn=None)
    assert not verdict.reachable and "no usable backup" in verdict.reason
