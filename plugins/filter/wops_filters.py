"""Filters the stack's roles share.

``wops_address``: how the other hosts of the stack reach a host. The host's
``wops_host_address`` in the inventory (set it where the controller reaches a
host differently from its peers, e.g. through a published port), else its
``ansible_host``, else its inventory name. A name outside the inventory is
returned as it is (an external server named directly).

    {{ postgresql_primary_host | wops_address(hostvars) }}

``wops_scram_verifier``: the SCRAM-SHA-256 verifier to send PostgreSQL instead
of a clear-text password, so that no password reaches the server's log (at
any ``log_statement``), pg_stat_statements or an error report. Given the
role's stored verifier, it returns that verifier unchanged when it was made
from this password (same salt: the module sees no change, idempotence holds);
otherwise a new verifier with a fresh random salt.

    password: "{{ vault_etl_password | wops_scram_verifier(stored.etl | default('')) }}"
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

# PostgreSQL's iteration count (scram_iterations' default; fixed before 16).
SCRAM_ITERATIONS = 4096
SCRAM_SALT_BYTES = 16


def wops_address(name: str, hostvars: Mapping[str, Any]) -> str:
    """The name or address peers use for the inventory host ``name``."""
    name = str(name)
    if not name or name not in hostvars:
        return name
    host = hostvars[name]
    for key in ("wops_host_address", "ansible_host"):
        value = host.get(key) if hasattr(host, "get") else None
        if value not in (None, ""):
            return str(value)
    return name


@cache
def _scram() -> ModuleType:
    """The SCRAM helpers the modules use (plugins/module_utils), loaded by path:
    a controller-side plugin cannot import a project's module_utils by name."""
    path = Path(__file__).resolve().parents[1] / "module_utils" / "pgbouncer_auth.py"
    spec = importlib.util.spec_from_file_location("wops_scram_helpers", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the SCRAM helpers from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wops_scram_verifier(password: str, stored: str | None = None,
                        iterations: int = SCRAM_ITERATIONS) -> str:
    """The verifier for ``password``: ``stored`` when it matches, else a new one."""
    scram = _scram()
    password = str(password)
    if not password:
        raise ValueError("wops_scram_verifier: the password is empty")
    if stored and str(stored).startswith(scram.SCRAM_PREFIX):
        try:
            if scram.verifier_matches(password, str(stored)):
                return str(stored)
        except scram.AuthFileError:
            pass  # unreadable stored verifier: replace it
    return str(scram.scram_verifier(password, os.urandom(SCRAM_SALT_BYTES), int(iterations)))


class FilterModule:
    """The stack's filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"wops_address": wops_address, "wops_scram_verifier": wops_scram_verifier}
