"""Shared fixtures for the unit tests: module_utils on the path, a real server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from warehouse_etl.devserver import DevServer, devserver, find_bindir

ROOT = Path(__file__).resolve().parents[2]
# Custom modules' pure helpers are imported by their file name, as Ansible does.
sys.path.insert(0, str(ROOT / "plugins/module_utils"))


@pytest.fixture(scope="session")
def server() -> Iterator[DevServer]:
    """A throwaway PostgreSQL (Debian's binaries), shared by the helpers' tests."""
    try:
        find_bindir()
    except Exception:
        pytest.skip("PostgreSQL server binaries not installed")
    with devserver({"fsync": "off"}) as srv:
        yield srv
