#!/usr/bin/env python3
"""The Debian packages the stack's roles install, read from the roles themselves.

The testbed's stack image (scripts/build-image.sh --stack) carries them so
that scenarios which do not test installation start from hosts where apt
has nothing left to unpack. The list is not written anywhere else: this
reads every ansible.builtin.apt task of the given roles and renders its
package names with the role's defaults and vars and the stack-wide facts
(testbed/stack_facts.py), as Ansible would.

    python testbed/stack_packages.py common pki postgresql warehouse_etl
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from testbed import stack_facts

ROLES = Path(__file__).resolve().parent.parent / "roles"
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701
_NESTED = ("block", "rescue", "always")


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) if path.exists() else None
    return data if isinstance(data, dict) else {}


def _context(role: str) -> dict[str, Any]:
    """The role's variables as the role sees them, before any host fact."""
    context: dict[str, Any] = dict(stack_facts.load())
    base = ROLES / role
    for name in ("defaults/main.yml", "vars/main.yml", "vars/Debian-12.yml"):
        context.update(_load(base / name))
    return context


def _render(value: Any, context: Mapping[str, Any], depth: int = 0) -> Any:
    """Render templates (and templates a rendered value still holds)."""
    if depth > 10:
        raise ValueError(f"templates nest too deep: {value!r}")
    if isinstance(value, list):
        return [item for v in value for item in _as_list(_render(v, context, depth + 1))]
    if not isinstance(value, str) or "{{" not in value:
        return value
    text = value.strip()
    if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        result = _ENV.compile_expression(text[2:-2].strip())(**context)
    else:
        result = _ENV.from_string(value).render(**context)
    return _render(result, context, depth + 1)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _apt_names(tasks: Any) -> Iterator[Any]:
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, dict):
            continue
        for key in _NESTED:
            yield from _apt_names(task.get(key))
        apt = task.get("ansible.builtin.apt")
        if isinstance(apt, dict) and "name" in apt and apt.get("state", "present") == "present":
            yield apt["name"]


def packages(roles: list[str]) -> list[str]:
    """Every package the roles' apt tasks install, sorted, without duplicates."""
    found: set[str] = set()
    for role in roles:
        tasks_dir = ROLES / role / "tasks"
        if not tasks_dir.is_dir():
            raise ValueError(f"no role {role} in {ROLES}")
        context = _context(role)
        for path in sorted(tasks_dir.glob("*.yml")):
            for names in _apt_names(yaml.safe_load(path.read_text())):
                for name in _as_list(_render(names, context)):
                    if not isinstance(name, str) or not name:
                        raise ValueError(f"{path}: package name {name!r} is not a name")
                    found.add(name)
    return sorted(found)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: stack_packages.py ROLE...", file=sys.stderr)
        return 2
    print(" ".join(packages(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
