"""roles/dr_ops: every step is an entry point whose argument spec is its whole input.

Each task file of the role (but main.yml) is a step that the DR playbooks
include with tasks_from; meta/argument_specs.yml declares, per step, the
dr_ops_* variables it reads. A step reads no dr_ops_* variable it does not
declare (other than the facts it sets itself, or that a file it includes
sets), and declares none it does not read. The playbooks call only steps
that exist.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles/dr_ops"
SPECS: dict[str, dict[str, Any]] = yaml.safe_load(
    (ROLE / "meta/argument_specs.yml").read_text())["argument_specs"]
STEPS = sorted(p.stem for p in (ROLE / "tasks").glob("*.yml") if p.stem != "main")
NAME = re.compile(r"\bdr_ops_[a-z_]+\b")


def _tasks(step: str) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = yaml.safe_load((ROLE / "tasks" / f"{step}.yml").read_text())
    return tasks


def _walk(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for task in tasks:
        out.append(task)
        for key in ("block", "rescue", "always"):
            out.extend(_walk(task.get(key) or []))
    return out


def _sets(step: str) -> set[str]:
    """Facts the step sets, and the variables and facts of the files it includes."""
    names: set[str] = set()
    for task in _walk(_tasks(step)):
        names |= {k for k in task.get("ansible.builtin.set_fact") or {} if k.startswith("dr_ops_")}
        included = task.get("ansible.builtin.include_tasks")
        if isinstance(included, dict):
            included = included.get("file")
        if included:
            names |= {k for k in task.get("vars") or {} if k.startswith("dr_ops_")}
            names |= _sets(Path(str(included)).stem) | _reads(Path(str(included)).stem)
    return names


def _templates(step: str) -> list[Path]:
    """The role's templates a step renders (a template task's src, over its loop)."""
    out = []
    for task in _walk(_tasks(step)):
        src = (task.get("ansible.builtin.template") or {}).get("src")
        if src:
            items: list[Any] = (task.get("loop") or []) if "{{ item }}" in src else [None]
            out += [ROLE / "templates" / src.replace("{{ item }}", str(item)) for item in items]
    return out


def _reads(step: str) -> set[str]:
    """The variables a step's file names, and those of the templates it renders."""
    text = (ROLE / "tasks" / f"{step}.yml").read_text()
    text += "".join(template.read_text() for template in _templates(step))
    return set(NAME.findall(text))


def test_every_step_has_an_entry_point_and_every_entry_point_a_step() -> None:
    assert sorted(set(SPECS) - {"main"}) == STEPS


@pytest.mark.parametrize("step", STEPS)
def test_a_step_reads_what_it_declares(step: str) -> None:
    declared = set(SPECS[step].get("options") or {})
    undeclared = _reads(step) - declared - _sets(step)
    assert undeclared == set(), f"{step} reads {sorted(undeclared)} without declaring them"
    unread = declared - _reads(step)
    assert unread == set(), f"{step} declares {sorted(unread)} but never reads them"


@pytest.mark.parametrize("step", STEPS)
def test_main_lists_every_variable_of_every_step_as_the_step_has_it(step: str) -> None:
    main = SPECS["main"]["options"]
    for name, option in (SPECS[step].get("options") or {}).items():
        assert main.get(name) == option, f"{step}: {name} differs from main's (use its alias)"


def test_the_dr_playbooks_call_only_steps_that_exist() -> None:
    called = set()
    for playbook in ("dr_drill.yml", "dr_restore.yml"):
        text = (ROOT / "playbooks" / playbook).read_text()
        called |= set(re.findall(r"name: dr_ops\n\s+tasks_from: (\w+)", text))
    assert called and called <= set(STEPS), sorted(called - set(STEPS))
