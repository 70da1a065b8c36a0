"""Every role has the same shape: main.yml is a table of contents of stages,
the preflight comes first and every stage's tag reaches it, and the stack's
shared plumbing comes from roles/wops (not from copies in each role).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir()
               if (p / "tasks/preflight.yml").exists())
STACK_ROLES = sorted(p.name for p in (ROOT / "roles").iterdir()
                     if (p / "meta/main.yml").exists() and p.name != "wops")


def _main(role: str) -> list[dict[str, Any]]:
    path = ROOT / "roles" / role / "tasks/main.yml"
    tasks: list[dict[str, Any]] = yaml.safe_load(path.read_text())
    return tasks


def _includes(task: dict[str, Any]) -> str:
    inc = task.get("ansible.builtin.include_tasks") or {}
    return str(inc.get("file", "")) if isinstance(inc, dict) else str(inc)


@pytest.mark.parametrize("role", ROLES)
def test_preflight_comes_first_and_every_stage_tag_reaches_it(role: str) -> None:
    tasks = [t for t in _main(role) if "ansible.builtin.include_vars" not in t]
    assert _includes(tasks[0]) == "preflight.yml", f"{role}: the first stage is not preflight.yml"
    stage_tags = {tag for t in tasks for tag in t.get("tags", []) if tag != "always"}
    preflight = tasks[0]
    applied = preflight["ansible.builtin.include_tasks"]["apply"]["tags"]
    for where in (preflight.get("tags", []), applied):
        missing = stage_tags - set(where)
        assert missing == set(), (
            f"{role}: --tags {sorted(missing)} would skip the preflight (add them to its include)")


@pytest.mark.parametrize("role", ROLES)
def test_main_is_a_table_of_contents(role: str) -> None:
    for task in _main(role):
        kinds = set(task) - {"name", "tags", "when", "vars"}
        # Control flow (meta: flush_handlers) belongs there too.
        assert kinds <= {"ansible.builtin.include_tasks", "ansible.builtin.include_vars",
                         "ansible.builtin.meta"}, (
            f"{role}/tasks/main.yml: '{task.get('name')}' is work, not a stage include")


@pytest.mark.parametrize("role", STACK_ROLES)
def test_every_role_depends_on_the_stack_facts(role: str) -> None:
    meta = yaml.safe_load((ROOT / "roles" / role / "meta/main.yml").read_text())
    names = [d["role"] if isinstance(d, dict) else d for d in meta.get("dependencies") or []]
    assert "wops" in names, f"{role}/meta/main.yml does not depend on wops (the stack-wide facts)"


def test_no_role_keeps_its_own_copy_of_the_shared_plumbing() -> None:
    shared = {"pgpass.j2"} | {p.name for p in (ROOT / "roles/wops/templates").iterdir()}
    copies = [str(p.relative_to(ROOT)) for p in (ROOT / "roles").glob("*/templates/*")
              if p.name in shared and p.parts[-3] != "wops"]
    assert copies == []
    handlers = (ROOT / "roles/wops/handlers/main.yml").read_text()
    assert "daemon_reload: true" in handlers
    others = [str(p.relative_to(ROOT)) for p in (ROOT / "roles").glob("*/handlers/main.yml")
              if p.parts[-3] != "wops" and "listen: Reload systemd units" in p.read_text()]
    assert others == []
