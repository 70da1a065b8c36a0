"""No secret where it must not be, after a converge and a password change.

The scenario's own converge and idempotence run as an operator debugging them
would (-vvv --diff, molecule.yml), their output kept in the Ansible log of the
scenario (ANSIBLE_LOG_PATH). This check changes the reporting role's password
to a known new value with the password stages of the converge (-vvv --diff;
its base tier, which handles no secret, left out), then a second run puts the
vault's value back. Every secret of the dev vault,
and the new password, is then searched for in: the scenario's Ansible log
(converge, idempotence, every check's playbook run), both runs' output, each
host's /var/log and journal, the process arguments sampled inside each host
during both runs, and every file under /etc, /var, /srv, /opt, /home, /root,
/run and /tmp that a user other than its owner may read
(reports/secret-search-postgresql.txt lists the places and hits).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from testbed import scenario, secret_search

PRIMARY = "wops-mol-pg-primary"
PROXY = "wops-mol-pg-proxy"
NEW_PASSWORD = "Rotated-reporting-2b7e41c9"
# Groups whose own service reads its group-readable secret files.
SERVICE_GROUPS = {"postgres"}
# The converge's stages that handle passwords: roles in PostgreSQL, pgBouncer's
# auth file, and pgBouncer's configure stage (it logs in to check its config).
PASSWORD_TAGS = "postgresql_objects,pgbouncer_auth,pgbouncer_configure"
# The base tier (the common role) handles no secret: left out of both runs.
SKIP_TAGS = "common"


def _stored_verifier(host: Any, role: str) -> str:
    out: str = host.check_output(
        "runuser -u postgres -- psql -XAtq -c %s",
        f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'")
    return out


def _login_through_pgbouncer(host: Any, password: str) -> Any:
    # A test's own login: runs after the sampling, so its arguments are not searched.
    return host.run(
        "env PGPASSWORD=%s psql -XAtq %s -c 'SELECT current_user'", password,
        f"host={PROXY} port=6432 dbname=warehouse user=reporting sslmode=verify-full "
        "sslrootcert=/etc/pgbouncer/tls/ca.crt connect_timeout=5")


def test_no_secret_in_output_logs_processes_or_readable_files(
        hosts: dict[str, Any], secrets: dict[str, str]) -> None:
    values = secret_search.secret_values(secrets)
    values["new reporting password"] = NEW_PASSWORD
    assert len(values) >= 10, sorted(values)
    primary = hosts[PRIMARY]
    before = _stored_verifier(primary, "reporting")

    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as extra:
        os.chmod(extra.name, 0o600)
        yaml.safe_dump({"vault_postgresql_reporting_password": NEW_PASSWORD}, extra)
    # Two runs, each sampled; the checks' own logins (a password in their
    # arguments) run between them, unsampled. The change runs with Ansible's
    # own strategy and connection (command lines as over SSH).
    samplers = [secret_search.ProcessSampler(hosts), secret_search.ProcessSampler(hosts)]
    try:
        with samplers[0]:
            change = scenario.playbook("converge.yml", "-vvv", "--diff", "--tags", PASSWORD_TAGS,
                                       "--skip-tags", SKIP_TAGS,
                                       "-e", f"@{extra.name}", env=scenario.stock_ansible_env())
    finally:
        os.unlink(extra.name)
    assert change.returncode == 0, scenario.failed_sections(change.stdout)
    changed = _stored_verifier(primary, "reporting")
    login_new = _login_through_pgbouncer(primary, NEW_PASSWORD)
    with samplers[1]:
        back = scenario.playbook("converge.yml", "-vvv", "--diff", "--tags", PASSWORD_TAGS,
                                 "--skip-tags", SKIP_TAGS)
    assert back.returncode == 0, scenario.failed_sections(back.stdout)

    # The change happened (so the runs did handle the secret), and was undone.
    assert changed != before and changed.startswith("SCRAM-SHA-256$")
    assert login_new.rc == 0 and login_new.stdout.strip() == "reporting", login_new.stderr
    assert _login_through_pgbouncer(
        primary, secrets["vault_postgresql_reporting_password"]).rc == 0
    assert _stored_verifier(primary, "reporting") != changed

    assert scenario.ran_on_stock_connection(change.stdout), \
        "the change did not run on Ansible's connection"
    hits, places = secret_search.search_runs("postgresql", PRIMARY, change.stdout, back.stdout,
                                             values)
    for sampler in samplers:
        sampled_hits, sampled_places = sampler.hits(values)
        hits += sampled_hits
        places += sampled_places
    host_hits, host_places = secret_search.search_hosts(hosts, values, SERVICE_GROUPS)
    hits += host_hits
    places += host_places
    secret_search.write_report("postgresql", hits, places, len(values))
    # Every host was sampled while the plays ran on it: many snapshots, and
    # Ansible's own Python among the processes seen. (search_hosts raises
    # when a host's search does not reach its end or finds nothing to read.)
    for sampler in samplers:
        for name, text in sampler.samples.items():
            assert sampler.count(name) >= 10, (name, sampler.count(name))
            assert "python3" in text, f"no Ansible process seen on {name}"
    assert hits == [], "\n".join(map(str, hits))


def test_the_search_finds_a_planted_secret(hosts: dict[str, Any]) -> None:
    """The search itself can fail: a value planted in each kind of place is found."""
    canary = "canary-value-5d0c1e77"
    host = hosts[PROXY]
    host.run("echo %s >/tmp/wops-canary && chmod 0644 /tmp/wops-canary", canary)
    host.run("logger -t wops-canary %s && echo %s >/var/log/wops-canary.log", canary, canary)
    try:
        hits, _ = secret_search.search_hosts([PROXY], {"canary": canary}, SERVICE_GROUPS)
    finally:
        host.run("rm -f /tmp/wops-canary /var/log/wops-canary.log")
    found = {h.place for h in hits}
    assert f"{PROXY}: readable file:/tmp/wops-canary" in found, found
    assert f"{PROXY}: log:/var/log/wops-canary.log" in found, found
    assert f"{PROXY}: journal" in found, found
    with secret_search.ProcessSampler([PROXY]) as sampler:
        host.run("sh -c 'sleep 1 # %s'", canary)
    assert sampler.hits({"canary": canary})[0], "a process argument was not sampled"


def test_a_secret_in_a_task_environment_is_found(tmp_path: Path) -> None:
    """A task that passes a secret through environment: leaks it, and the search sees it.

    Under Ansible's own connection (as the password change above runs), the
    environment is part of the remote command line: in -vvv output and in ps.
    """
    canary = "canary-env-8e21b7a4"
    play = tmp_path / "environment-leak.yml"
    play.write_text(yaml.safe_dump([{
        "name": "A task with a secret in its environment", "hosts": PROXY,
        "gather_facts": False,
        "tasks": [{"name": "Sleep with the canary in the environment",
                   "ansible.builtin.command": "sleep 2",
                   "environment": {"PGPASSWORD": canary}}]}]))
    with secret_search.ProcessSampler([PROXY]) as sampler:
        run = scenario.playbook(str(play), "-vvv", env=scenario.stock_ansible_env())
    assert run.returncode == 0, run.stdout[-3000:]
    assert secret_search.search_text("output", run.stdout, {"canary": canary}), \
        "-vvv output of Ansible's connection did not show the task's environment"
    assert sampler.hits({"canary": canary})[0], "ps did not show the task's environment"
