"""The stack's filter plugins (plugins/filter/wops_filters.py)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins/filter"))

from wops_filters import FilterModule, wops_address  # noqa: E402

HOSTVARS = {
    "db1": {"ansible_host": "10.0.0.5"},
    "db2": {"ansible_host": "127.0.0.1", "wops_host_address": "db2.internal"},
    "db3": {},
    "db4": {"ansible_host": ""},
}


def test_peers_use_the_inventory_address_then_ansible_host_then_the_name() -> None:
    assert wops_address("db1", HOSTVARS) == "10.0.0.5"
    # The controller reaches db2 through a published port; its peers do not.
    assert wops_address("db2", HOSTVARS) == "db2.internal"
    assert wops_address("db3", HOSTVARS) == "db3"
    assert wops_address("db4", HOSTVARS) == "db4"


def test_a_name_outside_the_inventory_is_used_as_it_is() -> None:
    assert wops_address("pg.example.internal", HOSTVARS) == "pg.example.internal"
    assert wops_address("", HOSTVARS) == ""


def test_the_filter_is_registered_under_its_name() -> None:
    assert FilterModule().filters()["wops_address"] is wops_address
