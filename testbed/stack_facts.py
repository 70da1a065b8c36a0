#!/usr/bin/env python3
"""The stack-wide facts (roles/wops/defaults/main.yml) for Python tools and tests.

The wops role's defaults are the one place the values several parts of the
stack share are set: PostgreSQL's version and Debian paths, its service name,
PostgreSQL's and pgBouncer's ports, the pgBackRest stanza, the ETL's incoming
directory. load() reads them,
applies overrides (an inventory's wops_* variables) and renders the values
derived from other facts, as Ansible would. Facts that need what only a
playbook run knows (playbook_dir, for wops_ca_dir) are left out unless the
caller says where the playbook is (load(..., playbook_dir=...)).

    python testbed/stack_facts.py                          # every fact, KEY=VALUE
    python testbed/stack_facts.py wops_postgresql_data_dir # one value
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

import jinja2
import yaml

DEFAULTS = Path(__file__).resolve().parent.parent / "roles/wops/defaults/main.yml"
PREFIX = "wops_"

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701


def _is_template(value: str) -> bool:
    return "{{" in value or "{%" in value


def _scalar(key: str, value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    raise TypeError(f"{key}: a stack fact is a scalar, not {type(value).__name__}")


def _render(raw: Mapping[str, str], context: Mapping[str, str]) -> dict[str, str]:
    """Values with every template rendered, repeated until nothing changes.

    A template renders once everything it refers to is a plain value; one that
    still refers to an unknown variable when no more progress is made is left
    out, as are the facts that derive from it.
    """
    done = {**context, **{k: v for k, v in raw.items() if not _is_template(v)}}
    pending = {k: v for k, v in raw.items() if _is_template(v)}
    progress = True
    while pending and progress:
        progress = False
        for key, template in list(pending.items()):
            try:
                value = _ENV.from_string(template).render(done)
            except jinja2.UndefinedError:
                continue
            except jinja2.TemplateError as exc:
                raise ValueError(f"{key}: cannot render {template!r}: {exc}") from exc
            if not _is_template(value):
                done[key] = value
                del pending[key]
                progress = True
            elif value != template:
                pending[key] = value
                progress = True
    return {k: v for k, v in done.items() if k not in context}


def load(overrides: Mapping[str, object] | None = None,
         playbook_dir: Path | None = None) -> dict[str, str]:
    """The stack's facts, rendered, with `overrides` applied first.

    Only names starting with ``wops_`` are taken from `overrides`, so a host's
    whole variable set (an inventory's hostvars) can be passed as it is.
    With `playbook_dir` (the directory of the playbook a run would use), the
    facts derived from it (wops_ca_dir) are rendered too.
    """
    data = yaml.safe_load(DEFAULTS.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{DEFAULTS}: not a mapping")
    raw = {str(k): _scalar(str(k), v) for k, v in data.items()}
    for key, value in (overrides or {}).items():
        if key.startswith(PREFIX):
            raw[key] = _scalar(key, value)
    context = {} if playbook_dir is None else {"playbook_dir": str(playbook_dir)}
    return _render(raw, context)


def main(argv: list[str]) -> int:
    facts = load()
    if len(argv) > 1:
        print("usage: stack_facts.py [KEY]", file=sys.stderr)
        return 2
    if argv:
        key = argv[0]
        if key not in facts:
            print(f"stack_facts.py: no fact {key} (unknown, or it needs a playbook run)",
                  file=sys.stderr)
            return 1
        print(facts[key])
        return 0
    for key, value in sorted(facts.items()):
        print(f"{key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
