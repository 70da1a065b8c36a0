"""wops-pgdump's retention (30 daily plus monthly archives) and its checks."""

from __future__ import annotations

import datetime as dt
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "wops_pgdump", ROOT / "roles/pg_dump_backup/files/wops_pgdump.py")
assert _spec and _spec.loader
pgdump: Any = importlib.util.module_from_spec(_spec)
sys.modules["wops_pgdump"] = pgdump
_spec.loader.exec_module(pgdump)


def _dumps(tmp_path: Path, days: int) -> list[Any]:
    start = dt.datetime(2026, 1, 1, 0, 30, tzinfo=dt.UTC)
    for n in range(days):
        taken = start + dt.timedelta(days=n)
        (tmp_path / f"warehouse-{taken:%Y%m%dT%H%M%SZ}.dump").write_bytes(b"x")
    (tmp_path / "other-20260101T003000Z.dump").write_bytes(b"x")
    (tmp_path / "warehouse-20260101T003000Z.dump.partial").write_bytes(b"x")
    return list(pgdump.find_dumps(tmp_path, "warehouse"))


def test_thirty_daily_plus_the_first_of_each_month(tmp_path: Path) -> None:
    dumps = _dumps(tmp_path, 400)  # 2026-01-01 .. 2027-02-04
    assert len(dumps) == 400 and dumps[0].taken > dumps[-1].taken
    keep = pgdump.retention(dumps, 30, 12)
    daily = [p for p, why in keep.items() if "daily" in why]
    monthly = sorted(p.name for p, why in keep.items() if "monthly" in why)
    assert len(daily) == 30
    assert len(monthly) == 12
    assert monthly[0] == "warehouse-20260301T003000Z.dump"
    assert monthly[-1] == "warehouse-20270201T003000Z.dump"
    # The newest month's first dump is within the 30 daily ones: both reasons.
    assert keep[tmp_path / "warehouse-20270201T003000Z.dump"] == "daily+monthly"
    assert len(keep) == 30 + 12 - 1


def test_few_dumps_are_all_kept(tmp_path: Path) -> None:
    dumps = _dumps(tmp_path, 5)
    assert len(pgdump.retention(dumps, 30, 12)) == 5


def test_validate_catches_a_changed_dump(tmp_path: Path) -> None:
    dump_file = tmp_path / "warehouse-20260101T003000Z.dump"
    dump_file.write_bytes(b"PGDMP not really")
    dump = pgdump.Dump(dump_file, "warehouse", dt.datetime.now(dt.UTC))
    assert pgdump.validate(dump, "/nonexistent") == "no checksum file"
    dump.checksum_path.write_text(f"{pgdump.sha256(dump_file)}  {dump_file.name}\n")
    dump_file.write_bytes(b"PGDMP changed")
    assert pgdump.validate(dump, "/nonexistent") == "checksum mismatch"


def test_cleanup_dry_run_and_for_real(tmp_path: Path) -> None:
    _dumps(tmp_path, 40)
    config = tmp_path / "pgdump.json"
    config.write_text(f'{{"directory": "{tmp_path}", "database": "warehouse", '
                      '"retention_daily": 30, "retention_monthly": 12}')
    script = str(ROOT / "roles/pg_dump_backup/files/wops_pgdump.py")
    dry = subprocess.run([sys.executable, script, "--config", str(config), "cleanup",
                          "--dry-run"], capture_output=True, text=True, check=True)
    assert dry.stdout.count("would remove") == 9  # 40 - 30 daily - 1 (2026-01-01 monthly)
    assert len(list(tmp_path.glob("warehouse-*.dump"))) == 40
    subprocess.run([sys.executable, script, "--config", str(config), "cleanup"],
                   capture_output=True, text=True, check=True)
    left = sorted(p.name for p in tmp_path.glob("warehouse-*.dump"))
    assert len(left) == 31 and left[0] == "warehouse-20260101T003000Z.dump"


def test_restore_list_leaves_extensions_to_the_postgresql_role() -> None:
    listing = (";\n; Archive created at 2026-11-26 04:15:47 UTC\n"
               "2; 3079 16396 EXTENSION - pg_stat_statements \n"
               "3824; 0 0 COMMENT - EXTENSION pg_stat_statements \n"
               "219; 1259 16410 TABLE warehouse fact_sales etl\n"
               "3801; 0 16410 TABLE DATA warehouse fact_sales etl\n")
    kept = pgdump.restore_list(listing, with_extensions=False)
    assert "EXTENSION" not in kept and "TABLE DATA warehouse fact_sales" in kept
    assert pgdump.restore_list(listing, with_extensions=True) == listing
