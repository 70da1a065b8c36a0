"""Running ansible-playbook against the controller itself, as the playbook tests do.

The tests in tests/playbooks write a small inventory of local hosts (the
stack's groups, ``ansible_connection: local``) and a play, then run a role in
check mode, often with its preflight tags only, and read what it refused:

    proc = controller.run(tmp_path, HOSTS, PLAY, "--check", "--tags", "pgbackrest_preflight",
                          *controller.extra_vars(pgbackrest_process_max=0))
    assert "pgbackrest_process_max is 0" in controller.flat(proc.stdout)

Facts: every local host is the controller, so its facts are the same in every
run. When WOPS_CONTROLLER_FACTS names a directory (the playbook tests' conftest
sets one per test process), runs gather them once per host name into that
jsonfile cache and read them from there after: gathering is most of a short
preflight run's time (3 of 5 s for a two-host play).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def env(**extra: str) -> dict[str, str]:
    """The environment of a controller run: the project's config and roles, no colour."""
    result = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
              "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"}
    cache = os.environ.get("WOPS_CONTROLLER_FACTS")
    if cache:
        result.update({"ANSIBLE_GATHERING": "smart", "ANSIBLE_CACHE_PLUGIN": "jsonfile",
                       "ANSIBLE_CACHE_PLUGIN_CONNECTION": cache,
                       "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "0"})
    result.update(extra)
    return result


def run(tmp_path: Path, hosts: str, play: str, *args: str, merge_stderr: bool = False,
        inventory: Path | None = None,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Write ``hosts`` (inventory YAML) and ``play``, then run the play on them.

    ``inventory`` names an inventory directory written by the caller instead
    (``hosts`` is then ignored). With ``merge_stderr`` stdout holds both
    streams, in order.
    """
    play_file = tmp_path / "play.yml"
    play_file.write_text(play)
    if inventory is None:
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(hosts)
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(play_file), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True, cwd=ROOT, check=False, env=env(**(extra_env or {})),
    )


def extra_vars(**values: object) -> list[str]:
    """``-e`` with the values as JSON, so that types (lists, dicts, booleans) survive."""
    return ["-e", json.dumps(values)]


def flat(text: str) -> str:
    """Output with the YAML callback's line folds and doubled quotes undone."""
    return " ".join(text.split()).replace("''", "'")


def local_hosts(*, python: str | None = None, become_su: bool = False,
                variables: str = "") -> str:
    """The ``all.vars`` lines every local inventory starts with (4-space indent)."""
    lines = ("all:\n  vars:\n    wops_environment: dev\n    ansible_connection: local\n"
             f"    ansible_python_interpreter: {python or ROOT / '.venv/bin/python'}\n")
    if become_su:
        # The controller has no sudo; root becomes postgres with su.
        lines += "    ansible_become_method: su\n"
    return lines + variables


def assert_refused(proc: subprocess.CompletedProcess[str], *texts: str,
                   not_reached: tuple[str, ...] = ()) -> None:
    """The run failed, its output names each text (line folds undone), and it
    printed none of ``not_reached`` (tasks that come after the refusal)."""
    assert proc.returncode != 0, proc.stdout[-3000:]
    out = flat(proc.stdout)
    missing = [text for text in texts if text not in out]
    assert not missing, (missing, proc.stdout[-3000:])
    reached = [text for text in not_reached if text in proc.stdout]
    assert not reached, (reached, proc.stdout[-3000:])


def run_cases(tmp_path: Path, inventory: str, group: str, cases: Mapping[str, Mapping[str, object]],
              play: str, *args: str) -> dict[str, tuple[bool, str]]:
    """Many cases in one run: each case is a host of its own, with the case's variables.

    ``inventory`` is the YAML of the hosts every case shares (local_hosts() and
    the groups); each case becomes a host named after it in ``group`` and in
    the group ``cases``, which ``play`` targets, with the case's variables as
    host variables (values as given: "0" stays a string, as with ``-e k=0``).
    One ansible-playbook start, one play and role load for every case,
    instead of one each (a preflight run is mostly that). Returns, per case,
    whether its host failed and what the run said for it (task names and
    messages, line folds undone), for the same assertions as a single run.
    """
    data = yaml.safe_load(inventory)
    children = data["all"].setdefault("children", {}) or {}
    data["all"]["children"] = children
    target = children.setdefault(group, {}) or {}
    children[group] = target
    hosts = target.setdefault("hosts", {}) or {}
    target["hosts"] = hosts
    for name, values in cases.items():
        hosts[name] = dict(values)
    children["cases"] = {"hosts": {name: None for name in cases}}
    inventory_file = tmp_path / "cases.yml"
    inventory_file.write_text(json.dumps(data))
    proc = run(tmp_path, "", play, *args, inventory=inventory_file,
               extra_env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
                          "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"})
    try:
        report = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError as error:
        raise AssertionError(f"no JSON report: {proc.stdout[-2000:]} {proc.stderr[-2000:]}") \
            from error
    said: dict[str, list[str]] = {name: [] for name in cases}
    for play_report in report.get("plays", []):
        for task in play_report.get("tasks", []):
            for host, result in task.get("hosts", {}).items():
                if host in said:
                    said[host].append(f"TASK [{task['task']['name']}]")
                    said[host].extend(_messages(result))
    stats = report.get("stats", {})
    return {name: (bool(stats.get(name, {}).get("failures", 0)
                        or stats.get(name, {}).get("unreachable", 0)),
                   flat("\n".join(said[name])))
            for name in cases}


def _messages(result: object) -> list[str]:
    """Every ``msg`` in a task result (loop items included), as text."""
    found: list[str] = []
    if isinstance(result, dict):
        for key, value in result.items():
            if key == "msg":
                found.extend(str(v) for v in (value if isinstance(value, list) else [value]))
            elif key == "results":
                for item in value if isinstance(value, list) else []:
                    found.extend(_messages(item))
    return found


def cases_refused(results: Mapping[str, tuple[bool, str]],
                  expected: Mapping[str, tuple[str, ...]],
                  not_reached: tuple[str, ...] = ()) -> list[str]:
    """What went wrong with cases that should each have been refused naming its texts.

    An empty list when every case's host failed, its output names each of its
    texts and none of ``not_reached`` (tasks after the refusal).
    """
    problems = []
    for name, texts in expected.items():
        failed, out = results[name]
        if not failed:
            problems.append(f"{name}: not refused: {out[-1500:]}")
            continue
        missing = [text for text in texts if text not in out]
        if missing:
            problems.append(f"{name}: does not name {missing}: {out[-1500:]}")
        reached = [task for task in not_reached if f"TASK [{task}]" in out]
        if reached:
            problems.append(f"{name}: reached {reached}")
    return problems


def vars_of(extra: list[str]) -> dict[str, object]:
    """The variables of ``-e`` arguments: ``k=v`` as strings (as -e gives them), JSON typed."""
    values: dict[str, object] = {}
    for arg in extra[1::2]:
        if arg.startswith("{"):
            values.update(json.loads(arg))
        else:
            key, _, value = arg.partition("=")
            values[key] = value
    return values
