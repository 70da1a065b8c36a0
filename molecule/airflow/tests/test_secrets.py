"""No secret in the Airflow host's logs, journal or readable files, after every other check.

Runs last (file order): by then the DAG has run and loaded a batch, the UI was
logged in to in a browser, components restarted and a failed migration was
rolled back. Every secret of the dev vault is searched for in /var/log,
Airflow's own logs (/var/lib/airflow/logs: task and DAG-processor logs, which
the UI shows to its users, so searched whoever may read them), the journal,
and every file under /etc, /var, /srv, /opt, /home, /root, /run and /tmp that
a user other than its owner may read (reports/secret-search-airflow.txt lists
the places and hits). The postgresql scenario's search also covers Ansible's
output and process arguments during a password change.
"""

from __future__ import annotations

from typing import Any

from testbed import secret_search

HOST = "wops-mol-af-db"
AIRFLOW_LOGS = "/var/lib/airflow/logs"
# Groups whose own service reads its group-readable secret files.
SERVICE_GROUPS = {"postgres"}


def test_no_secret_in_logs_journal_or_readable_files(
        hosts: dict[str, Any], secrets: dict[str, str]) -> None:
    values = secret_search.secret_values(secrets)
    assert len(values) >= 10, sorted(values)
    # The search has Airflow's logs to read: the DAG run wrote its task logs.
    task_logs = hosts[HOST].run("find %s -type f -name '*.log' -path '*dag_id=*'", AIRFLOW_LOGS)
    assert task_logs.rc == 0 and task_logs.stdout.strip(), f"no task log under {AIRFLOW_LOGS}"

    hits, places = secret_search.search_hosts(
        [HOST], values, SERVICE_GROUPS, log_dirs=("/var/log", AIRFLOW_LOGS))
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
