"""Shared fixtures for the unit tests: module_utils on the path, a real server."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import stack_facts
from testbed.pgserver import DevServer, devserver, find_bindir

ROOT = Path(__file__).resolve().parents[2]
# Custom modules' pure helpers are imported by their file name, as Ansible does.
sys.path.insert(0, str(ROOT / "plugins/module_utils"))
# The stack's server binaries when installed (PG_BINDIR, if set, wins); else
# the server module's own discovery.
_STACK_BINDIR = Path(stack_facts.load()["wops_postgresql_bin_dir"])
if (_STACK_BINDIR / "initdb").exists():
    os.environ.setdefault("PG_BINDIR", str(_STACK_BINDIR))


@pytest.fixture(scope="session")
def server() -> Iterator[DevServer]:
    """A throwaway PostgreSQL (Debian's binaries), shared by the helpers' tests."""
    try:
        find_bindir()
    except Exception:
        pytest.skip("PostgreSQL server binaries not installed")
    with devserver({"fsync": "off"}) as srv:
        yield srv
