"""``etl generate``: TPC-H batches from tpchgen-cli, shaped as the loader expects.

tpchgen-cli writes ``<table>/<table>.<k>.tbl`` when asked for one part of a
split; a batch is a flat directory, and an incremental batch carries only
its share of orders and line items with full dimension snapshots (the
dimensions are small and every order must find its customer).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import ConfigError, EtlError

DIMENSIONS = ("region", "nation", "supplier", "customer", "part", "partsupp")
FACTS = ("orders", "lineitem")


def find_tpchgen() -> str:
    """tpchgen-cli next to this interpreter (a venv) first, then on PATH."""
    beside = Path(sys.executable).parent / "tpchgen-cli"
    if beside.exists() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("tpchgen-cli")
    if not found:
        raise ConfigError("tpchgen-cli not found: pip install tpchgen-cli")
    return found


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise EtlError(f"tpchgen-cli failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")


def generate(scale_factor: float, output: Path, fmt: str = "tbl",
             parts: int | None = None, part: int | None = None) -> list[Path]:
    if fmt not in ("tbl", "csv"):
        raise ConfigError("--format must be tbl or csv")
    if scale_factor <= 0:
        raise ConfigError("--scale-factor must be positive")
    if (parts is None) != (part is None):
        raise ConfigError("--parts and --part go together")
    if parts is not None and part is not None and not 1 <= part <= parts:
        raise ConfigError("--part must be between 1 and --parts")
    exe = find_tpchgen()
    output.mkdir(parents=True, exist_ok=True)
    base = [exe, fmt, "-s", str(scale_factor), "--no-progress", "--overwrite"]
    if parts is None:
        _run([*base, "-o", str(output)])
    else:
        _run([*base, "-o", str(output), "-T", ",".join(DIMENSIONS)])
        with tempfile.TemporaryDirectory(dir=output) as tmp:
            for table in FACTS:
                _run([*base, "-o", tmp, "-T", table, "--parts", str(parts),
                      "--part", str(part)])
                src = Path(tmp) / table / f"{table}.{part}.{fmt}"
                shutil.move(str(src), output / f"{table}.{fmt}")
    return sorted(output.glob(f"*.{fmt}"))
