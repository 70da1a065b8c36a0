"""No secret in Ansible's output, the Airflow host's logs, journal, processes or readable files.

Runs last (file order): by then the DAG has run and loaded a batch, the UI was
logged in to in a browser, components restarted and a failed migration was
rolled back. Then the administrator's password is changed to a known new
value and put back, each with the airflow tier's migrate stage (where the
role sets it with the airflow CLI) at -vvv --diff, the change with Ansible's own
connection (remote command lines as over SSH) while every process's
arguments are sampled. Every secret of the dev vault, and the new password,
is then searched for in: the scenario's Ansible log (its converge and
idempotence run at -vvv --diff, every check's playbook run), both runs'
output, the sampled process arguments, /var/log, Airflow's own logs
(/var/lib/airflow/logs: task and DAG-processor logs, which the UI shows to
its users, so searched whoever may read them), the journal, and every file
under /etc, /var, /srv, /opt, /home, /root, /run and /tmp that a user other
than its owner may read (reports/secret-search-airflow.txt lists the places
and hits).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import yaml

from testbed import airflow_checks, scenario, secret_search

HOST = "wops-mol-af-db"
NEW_PASSWORD = "Rotated-admin-6c1f04e9"
# The airflow tier alone (the dev vault and site.yml's airflow play: the
# converge's other plays handle none of the administrator's secrets), and its
# stage that sets the administrator's password (with preflight).
PLAYBOOK = "side_effect.yml"
ADMIN_TAGS = "airflow_migrate"
AIRFLOW_LOGS = "/var/lib/airflow/logs"
# Groups whose own service reads its group-readable secret files.
SERVICE_GROUPS = {"postgres"}


def _logs_in(host: Any, password: str) -> bool:
    code, _ = airflow_checks.api(host, "POST", "/auth/token",
                                 body={"username": "admin", "password": password})
    return code in (200, 201)


def test_no_secret_in_output_logs_processes_or_readable_files(
        hosts: dict[str, Any], secrets: dict[str, str]) -> None:
    values = secret_search.secret_values(secrets)
    values["new administrator password"] = NEW_PASSWORD
    assert len(values) >= 10, sorted(values)
    host = hosts[HOST]
    # The search has Airflow's logs to read: the DAG run wrote its task logs.
    task_logs = host.run("find %s -type f -name '*.log' -path '*dag_id=*'", AIRFLOW_LOGS)
    assert task_logs.rc == 0 and task_logs.stdout.strip(), f"no task log under {AIRFLOW_LOGS}"

    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as extra:
        os.chmod(extra.name, 0o600)
        yaml.safe_dump({"vault_airflow_admin_password": NEW_PASSWORD}, extra)
    sampler = secret_search.ProcessSampler([HOST])
    try:
        with sampler:
            change = scenario.playbook(PLAYBOOK, "-vvv", "--diff", "--tags", ADMIN_TAGS,
                                       "-e", f"@{extra.name}", env=scenario.stock_ansible_env())
    finally:
        os.unlink(extra.name)
    assert change.returncode == 0, scenario.failed_sections(change.stdout)
    # The change happened (the run did handle the secret) and is undone.
    changed_in = _logs_in(host, NEW_PASSWORD)
    old_refused = not _logs_in(host, secrets["vault_airflow_admin_password"])
    back = scenario.playbook(PLAYBOOK, "-vvv", "--diff", "--tags", ADMIN_TAGS)
    assert back.returncode == 0, scenario.failed_sections(back.stdout)
    assert changed_in and old_refused, (changed_in, old_refused)
    assert _logs_in(host, secrets["vault_airflow_admin_password"])
    assert not _logs_in(host, NEW_PASSWORD)
    assert "TASK [airflow : Set the administrator's password (the user already existed)]" \
        in change.stdout
    assert scenario.ran_on_stock_connection(change.stdout), \
        "the change did not run on Ansible's connection"

    hits, places = secret_search.search_runs("airflow", HOST, change.stdout, back.stdout, values)
    sampled_hits, sampled_places = sampler.hits(values)
    hits += sampled_hits
    places += sampled_places
    # The airflow CLI ran while the host was sampled.
    assert sampler.count(HOST) >= 10, sampler.count(HOST)
    assert "bin/airflow users" in sampler.samples[HOST], "the airflow CLI was not seen running"
    host_hits, host_places = secret_search.search_hosts(
        [HOST], values, SERVICE_GROUPS, log_dirs=("/var/log", AIRFLOW_LOGS))
    hits += host_hits
    places += host_places
    secret_search.write_report("airflow", hits, places, len(values))
    assert hits == [], "\n".join(map(str, hits))


def test_the_search_reads_airflow_logs(hosts: dict[str, Any]) -> None:
    """The search itself can fail: a value planted in a task log is found."""
    canary = "canary-airflow-3f9a61d2"
    planted = f"{AIRFLOW_LOGS}/wops-canary.log"
    host = hosts[HOST]
    host.run("install -o airflow -g airflow -m 0600 /dev/null %s", planted)
    try:
        host.run("sh -c %s", f"echo 'leaked {canary}' >> {planted}")
        hits, _ = secret_search.search_hosts(
            [HOST], {"canary": canary}, SERVICE_GROUPS, log_dirs=("/var/log", AIRFLOW_LOGS))
    finally:
        host.run("rm -f %s", planted)
    assert hits == [secret_search.Hit(f"{HOST}: log:{planted}", "canary")], hits
