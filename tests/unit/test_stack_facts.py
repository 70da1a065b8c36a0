"""testbed/stack_facts.py: the stack-wide facts, rendered; and no copies of them elsewhere.

The facts live in roles/wops/defaults/main.yml. Roles, playbooks, inventories,
tests and tools take them from there (Ansible variables, or stack_facts in
Python); the drift guard below fails on a literal copy of one of them.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import stack_facts

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "testbed/stack_facts.py"


def test_derived_values_follow_the_version_and_cluster() -> None:
    facts = stack_facts.load({"wops_postgresql_version": "15"})
    assert facts["wops_postgresql_data_dir"] == "/var/lib/postgresql/15/main"
    assert facts["wops_postgresql_conf_dir"] == "/etc/postgresql/15/main"
    assert facts["wops_postgresql_bin_dir"] == "/usr/lib/postgresql/15/bin"
    assert facts["wops_postgresql_service"] == "postgresql@15-main"

    newer = stack_facts.load({"wops_postgresql_version": "16"})
    assert newer["wops_postgresql_data_dir"] == "/var/lib/postgresql/16/main"
    assert newer["wops_postgresql_service"] == "postgresql@16-main"
    assert newer["wops_postgresql_log"] == "/var/log/postgresql/postgresql-16-main.log"

    other = stack_facts.load({"wops_postgresql_version": 16, "wops_postgresql_cluster": "dw"})
    assert other["wops_postgresql_data_dir"] == "/var/lib/postgresql/16/dw"


def test_archive_command_names_the_overridden_stanza() -> None:
    facts = stack_facts.load({"wops_pgbackrest_stanza": "sales"})
    assert facts["wops_pgbackrest_stanza"] == "sales"
    assert facts["wops_archive_command"] == "pgbackrest --stanza=sales archive-push %p"


def test_ports_are_facts_and_an_inventory_may_give_them_as_numbers() -> None:
    facts = stack_facts.load()
    assert (facts["wops_postgresql_port"], facts["wops_pgbouncer_port"]) == ("5432", "6432")
    other = stack_facts.load({"wops_postgresql_port": 15432, "wops_pgbouncer_port": 16432})
    assert (other["wops_postgresql_port"], other["wops_pgbouncer_port"]) == ("15432", "16432")


def test_overrides_may_be_templates_and_only_wops_names_count() -> None:
    facts = stack_facts.load({
        "wops_pgbackrest_stanza": "{{ wops_environment }}-dw",
        "wops_environment": "staging",
        "postgresql_version": "9",
        "inventory_hostname": "wops-dev-db1",
    })
    assert facts["wops_archive_command"] == "pgbackrest --stanza=staging-dw archive-push %p"
    assert facts["wops_ca_common_name"] == "warehouse-ops staging CA"
    assert "postgresql_version" not in facts and "inventory_hostname" not in facts


def test_facts_that_need_a_playbook_run_are_left_out() -> None:
    facts = stack_facts.load()
    assert "wops_ca_dir" not in facts  # playbook_dir
    assert all("{{" not in v and "{%" not in v for v in facts.values())
    assert stack_facts.load({"wops_pgbackrest_stanza": "{{ playbook_dir }}"}).keys() \
        == facts.keys() - {"wops_pgbackrest_stanza", "wops_archive_command"}


def test_non_scalar_override_is_refused() -> None:
    with pytest.raises(TypeError, match="wops_pgbackrest_stanza"):
        stack_facts.load({"wops_pgbackrest_stanza": ["a", "b"]})


def test_cli_prints_one_value_or_every_fact_for_the_shell() -> None:
    one = subprocess.run([sys.executable, str(SCRIPT), "wops_postgresql_service"],
                         capture_output=True, text=True, check=True)
    assert one.stdout == stack_facts.load()["wops_postgresql_service"] + "\n"
    every = subprocess.run([sys.executable, str(SCRIPT)],
                           capture_output=True, text=True, check=True)
    parsed = dict(shlex.split(line)[0].split("=", 1) for line in every.stdout.splitlines())
    assert parsed == stack_facts.load()
    unknown = subprocess.run([sys.executable, str(SCRIPT), "wops_ca_dir"],
                             capture_output=True, text=True, check=False)
    assert unknown.returncode == 1 and "wops_ca_dir" in unknown.stderr


# Literal copies of stack facts (the defaults' values, or pieces of them).
DRIFT_LITERALS = (
    "postgresql/15/",
    "@15-main",
    "postgresql-15-main",
    "--stanza=warehouse",
    "/var/lib/warehouse-etl/incoming",
    "/srv/warehouse/incoming",
    "/.pki/",
)
DRIFT_PATHS = ("roles", "playbooks", "inventory", "molecule", "scripts", "benchmarks", "etl",
               "testbed", "runbooks/*.py", "tests", ".config")


def _drift_checked(rel: str) -> bool:
    return not (
        rel.endswith(".md")
        or rel.startswith(("roles/wops/", "roles/airflow/files/constraints"))
        or rel == Path(__file__).resolve().relative_to(ROOT).as_posix()
    )


def test_no_copies_of_stack_facts_outside_the_wops_role() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--",
         *DRIFT_PATHS],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    offenders = []
    for rel in sorted(set(filter(None, listed.split("\0")))):
        path = ROOT / rel
        if not _drift_checked(rel) or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            found = [lit for lit in DRIFT_LITERALS if lit in line]
            if found:
                offenders.append(f"{rel}:{number}: {', '.join(found)}")
    assert not offenders, (
        "literal copies of stack facts (take them from roles/wops/defaults/main.yml: "
        "wops_* variables, or testbed/stack_facts.py):\n" + "\n".join(offenders))
