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

``wops_problems``: the messages of the checks that fail, in order, so that a
role's preflight checks every input in one task and names every problem at
once. Each check is a mapping: ``that`` (a boolean, or a list of booleans that
must all hold) with ``msg``; or ``problems``, a list of messages already
worked out (a check over the entries of a list, one message per bad entry);
and optionally ``when`` (the check applies only when true). Ansible templates
a task's variables lazily, so ``that`` is read only when ``when`` holds and
``msg`` only when the check fails: a message may name values that exist only
when the check fails.

    ansible.builtin.assert:
      that: _problems == []
      fail_msg: "{{ _problems }}"
    vars:
      _problems: "{{ _checks | wops_problems }}"
      _checks:
        - that: "{{ port | int in range(1, 65536) }}"
          msg: "port is {{ port }}; use a TCP port, 1 to 65535."

``wops_patroni_patch``: the body of a ``PATCH /config`` to Patroni's REST API
that makes the cluster's dynamic configuration in etcd what the inventory
says (empty when it already is); PostgreSQL parameters set by hand in etcd
are removed.

    body: "{{ current_config | wops_patroni_patch(_postgresql_patroni_dcs) }}"
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
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


def _truth(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"wops_problems: {where} is {value!r} ({type(value).__name__}), not a boolean: "
                    "write the condition as a Jinja expression, such as \"{{ x | length > 0 }}\"")


def wops_problems(checks: Sequence[Mapping[str, Any]]) -> list[str]:
    """The messages of the failing checks (see the module's docstring)."""
    if isinstance(checks, (str, Mapping)) or not isinstance(checks, Sequence):
        raise TypeError("wops_problems: the checks must be a list of mappings, "
                        f"not {type(checks).__name__}")
    found: list[str] = []
    for index, check in enumerate(checks):
        if not isinstance(check, Mapping):
            raise TypeError(
                f"wops_problems: check {index} is {type(check).__name__}, not a mapping")
        keys = set(check)
        if keys - {"that", "msg", "problems", "when"} or ("problems" in keys) == ("that" in keys) \
                or ("that" in keys) != ("msg" in keys):
            raise ValueError(f"wops_problems: check {index} has the keys {sorted(keys)}; "
                             "give that and msg, or problems (each with an optional when)")
        if "when" in keys and not _truth(check["when"], f"check {index}'s when"):
            continue
        if "problems" in keys:
            problems = check["problems"]
            if isinstance(problems, (str, Mapping)) or not isinstance(problems, Sequence):
                raise TypeError(f"wops_problems: check {index}'s problems is "
                                f"{type(problems).__name__}, not a list of messages")
            found += [str(problem) for problem in problems]
            continue
        that = check["that"]
        # A list is read in order and no further than its first false item.
        conditions = that if isinstance(that, Sequence) and not isinstance(that, str) else [that]
        if not all(_truth(c, f"check {index}'s that") for c in conditions):
            found.append(str(check["msg"]))
    return found


_TRUE = ("true", "on", "1", "yes")
_FALSE = ("false", "off", "0", "no")


def _same_setting(a: Any, b: Any) -> bool:
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        return bool(a == b)
    if isinstance(a, bool) or isinstance(b, bool):
        left, right = str(a).lower(), str(b).lower()
        return (left in _TRUE and right in _TRUE) or (left in _FALSE and right in _FALSE)
    return str(a) == str(b)


def _changed(current: Mapping[str, Any], desired: Mapping[str, Any],
             skip: str = "") -> dict[str, Any]:
    return {key: value for key, value in desired.items()
            if key != skip and (key not in current or not _same_setting(current[key], value))}


def wops_patroni_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The PATCH /config body that turns Patroni's dynamic configuration into ``desired``.

    Empty when nothing differs. Keys of ``desired`` are set where their value
    differs (values compared as text, as PostgreSQL reads them: 100 and
    "100" are the same setting); a PostgreSQL parameter that etcd holds and
    ``desired`` does not (set by hand with patronictl edit-config) is
    removed (null), so that the inventory stays the one source of the
    cluster's settings. Other keys etcd holds (Patroni's own, such as
    slots) are left alone.
    """
    if not isinstance(current, Mapping) or not isinstance(desired, Mapping):
        raise TypeError("wops_patroni_patch: both configurations must be mappings")
    patch = _changed(current, desired, skip="postgresql")
    want_pg = desired.get("postgresql") or {}
    have_pg = current.get("postgresql") or {}
    pg_patch = _changed(have_pg, want_pg, skip="parameters")
    have_params = have_pg.get("parameters") or {}
    want_params = want_pg.get("parameters") or {}
    params: dict[str, Any] = _changed(have_params, want_params)
    params.update({name: None for name in have_params if name not in want_params})
    if params:
        pg_patch["parameters"] = params
    if pg_patch:
        patch["postgresql"] = pg_patch
    return patch


_LEADER_ROLES = ("leader", "master", "primary")


def wops_patroni_leader(views: Any) -> str:
    """The member the first Patroni /cluster view that names one calls the leader, or ''.

    ``views`` is a list of /cluster answers (dicts with ``members``; others,
    such as members that did not answer, are skipped), in the order they
    were asked:

        {{ _views.results | map(attribute='json', default={}) | list | wops_patroni_leader }}
    """
    for view in views or []:
        if not isinstance(view, Mapping):
            continue
        for member in view.get("members") or []:
            if isinstance(member, Mapping) and member.get("role") in _LEADER_ROLES:
                return str(member.get("name", ""))
    return ""


class FilterModule:
    """The stack's filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"wops_address": wops_address, "wops_patroni_leader": wops_patroni_leader,
                "wops_patroni_patch": wops_patroni_patch,
                "wops_problems": wops_problems, "wops_scram_verifier": wops_scram_verifier}
