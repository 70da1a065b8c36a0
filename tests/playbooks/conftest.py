"""The playbook tests share one fact cache per test process (see testbed/controller.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def controller_fact_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = os.environ.get("WOPS_CONTROLLER_FACTS")
    os.environ["WOPS_CONTROLLER_FACTS"] = str(tmp_path_factory.mktemp("controller-facts"))
    yield
    if previous is None:
        os.environ.pop("WOPS_CONTROLLER_FACTS", None)
    else:
        os.environ["WOPS_CONTROLLER_FACTS"] = previous
