"""Filters the stack's roles share.

``wops_address``: how the other hosts of the stack reach a host. The host's
``wops_host_address`` in the inventory (set it where the controller reaches a
host differently from its peers, e.g. through a published port), else its
``ansible_host``, else its inventory name. A name outside the inventory is
returned as it is (an external server named directly).

    {{ postgresql_primary_host | wops_address(hostvars) }}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


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


class FilterModule:
    """The stack's filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"wops_address": wops_address}
