"""Configuration changes on a running primary: reload, restart, rejection.

Each test reruns the scenario's converge playbook against the scenario's
inventory with extra variables, limited to the primary, as an operator applies
a settings change to one server (site.yml --tags postgresql_configure
--limit), then looks at the server: its start
time (pg_postmaster_start_time()) tells a reload from a restart. Every test
that changes the configuration puts it back before it ends; the rejected
ones prove that nothing changed. Preflight failures of every kind
are covered without hosts in tests/playbooks/test_postgresql_bad_input.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

Host = Any

PRIMARY = "wops-mol-pg-primary"
# The checks run on the primary only (the replica has checks of its own).
testinfra_hosts = [PRIMARY]
DROPIN = "conf.d/50-warehouse-ops.conf"  # in the cluster's configuration directory


def sql(host: Host, query: str) -> str:
    out: str = host.check_output("runuser -u postgres -- psql -XAtq -c %s", query)
    return out


def started(host: Host) -> str:
    return sql(host, "SELECT pg_postmaster_start_time()")


def play(*args: str, tags: str = "postgresql_configure",
         extra_vars: dict[str, object] | None = None) -> subprocess.CompletedProcess[str]:
    """Run converge.yml on the primary for some of the role's tags, with extra variables.

    The replica stays out: a restart there with a max_connections below the
    primary's would stop its recovery.
    """
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
           str(scenario / "converge.yml"), "--tags", tags, "--limit", PRIMARY, *args]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    # One stream: failures go to stderr with the scenario's display settings.
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False, timeout=1200,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})


def recap_changed(proc: subprocess.CompletedProcess[str]) -> int:
    line = next(ln for ln in proc.stdout.splitlines() if "changed=" in ln and "ok=" in ln)
    return int(line.split("changed=")[1].split()[0])


@pytest.fixture
def restore(host: Host) -> Iterator[None]:
    """Converge back to the scenario's own settings after the test."""
    yield
    proc = play(extra_vars={"postgresql_restart_allowed": True})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert sql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"


@pytest.mark.usefixtures("restore")
def test_reload_only_change_keeps_the_server_running(host: Host) -> None:
    before = started(host)
    proc = play(extra_vars={"postgresql_settings": {"work_mem": "7MB",
                                                   "log_min_duration_statement": "2s"}})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert sql(host, "SHOW work_mem") == "7MB"
    assert sql(host, "SHOW log_min_duration_statement") == "2s"
    assert started(host) == before
    assert "needs a restart" not in proc.stdout


@pytest.mark.usefixtures("restore")
def test_restart_only_change_waits_for_permission(host: Host) -> None:
    before = started(host)
    max_connections = sql(host, "SHOW max_connections")
    settings = {"max_connections": int(max_connections) - 30, "work_mem": "6MB"}
    proc = play(extra_vars={"postgresql_settings": settings})
    assert proc.returncode == 0, proc.stdout[-3000:]
    # Reloaded what it could, reported the rest, did not restart.
    assert "needs a restart for max_connections" in proc.stdout
    assert started(host) == before
    assert sql(host, "SHOW max_connections") == max_connections
    assert sql(host, "SHOW work_mem") == "6MB"
    assert sql(host, "SELECT string_agg(name, ',') FROM pg_settings WHERE pending_restart") \
        == "max_connections"

    allowed = play(extra_vars={"postgresql_restart_allowed": True, "postgresql_settings": settings})
    assert allowed.returncode == 0, allowed.stdout[-3000:]
    assert started(host) != before
    assert sql(host, "SHOW max_connections") == str(settings["max_connections"])


def test_rejected_setting_fails_and_leaves_the_server_alone(
        host: Host, stack: dict[str, str]) -> None:
    conf = stack["wops_postgresql_conf_dir"]
    before = started(host)
    dropin = host.file(f"{conf}/{DROPIN}").content_string
    proc = play(extra_vars={"postgresql_settings": {"work_mem": "lots"}})
    assert proc.returncode != 0
    assert "PostgreSQL rejects the new settings (work_mem)" in proc.stdout, proc.stdout[-3000:]
    # The previous file is back, no backup copy is left, the server never saw it.
    assert host.file(f"{conf}/{DROPIN}").content_string == dropin
    assert host.run(f"ls {conf}/conf.d").stdout.split() == ["50-warehouse-ops.conf"]
    assert host.service(stack["wops_postgresql_service"]).is_running
    assert started(host) == before
    assert sql(host, "SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL") == "0"


def test_rejected_hba_line_fails_and_leaves_the_server_alone(
        host: Host, stack: dict[str, str]) -> None:
    hba_file = f"{stack['wops_postgresql_conf_dir']}/pg_hba.conf"
    before = started(host)
    hba = host.file(hba_file).content_string
    proc = play(extra_vars={"postgresql_hba_entries": [
        {"type": "hostssl", "database": "warehouse", "user": "etl", "address": "samenet",
         "method": "scram-sha-256", "options": "clientcert=sometimes"},
    ]})
    assert proc.returncode != 0
    assert "PostgreSQL rejects pg_hba.conf built from postgresql_hba_entries" in proc.stdout, \
        proc.stdout[-3000:]
    # The message quotes the rejected line, option and all.
    assert "clientcert=sometimes" in proc.stdout, proc.stdout[-3000:]
    assert host.file(hba_file).content_string == hba
    assert started(host) == before
    assert sql(host, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0"


@pytest.mark.parametrize(("extra", "named"), [
    ({"postgresql_settings": {"wrok_mem": "8MB"}}, "postgresql_settings names wrok_mem"),
    ({"postgresql_users": [{"name": "etl", "password_var": "vault_postgresql_nope_password"}]},
     "'vault_postgresql_nope_password', which is not defined"),
])
def test_bad_input_fails_in_preflight_and_changes_nothing(
        host: Host, extra: dict[str, object], named: str) -> None:
    before = started(host)
    proc = play(extra_vars=extra)
    assert proc.returncode != 0
    assert named in proc.stdout, proc.stdout[-3000:]
    assert "Write the settings drop-in" not in proc.stdout
    assert recap_changed(proc) == 0
    assert started(host) == before


def test_check_mode_on_a_converged_host_changes_nothing(host: Host) -> None:
    before = started(host)
    proc = play("--check", "--diff", tags="postgresql")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert recap_changed(proc) == 0, proc.stdout[-3000:]
    assert started(host) == before
