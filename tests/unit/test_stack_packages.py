"""testbed/stack_packages.py reads the packages from the roles' own apt tasks."""

from __future__ import annotations

import pytest

from testbed import stack_facts, stack_packages


def test_the_postgresql_role_installs_the_stack_major_version() -> None:
    version = stack_facts.load()["wops_postgresql_version"]
    names = stack_packages.packages(["postgresql"])
    assert f"postgresql-{version}" in names
    assert f"postgresql-client-{version}" in names
    assert "python3-psycopg2" in names


def test_every_role_named_contributes_and_the_list_is_sorted_and_unique() -> None:
    names = stack_packages.packages(["common", "pki", "postgresql", "warehouse_etl"])
    assert {"ca-certificates", "locales", "python3-cryptography", "python3-venv"} <= set(names)
    assert names == sorted(set(names))


def test_an_unknown_role_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="no role nosuchrole"):
        stack_packages.packages(["nosuchrole"])
