"""pgBouncer beside PostgreSQL and on its own host: observed behaviour."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from testbed import scenario

DB = "wops-mol-pg-primary"
# pgbench runs this long; the play must finish inside it, 5 s before the
# end (the play starts once every client is connected, a few seconds in).
# The play took 57 s while the airflow scenario ran in the other lane.
LOAD_SECONDS = 90
# The side effect applies a pgBouncer setting: the role's configure stage
# (preflight comes with it), as an operator's run with this tag would.
CONFIGURE = ("--tags", "pgbouncer_configure")
# Transactions per second across the 200 clients: every client keeps its
# connection and keeps working through the reload, without pgbench taking
# every CPU of the machine (which the other scenario lane needs) for 2 min.
LOAD_RATE = 200
PROXY = "wops-mol-pg-proxy"


def _psql(host: Any, conninfo: str, sql: str, password: str) -> Any:
    return host.run(
        "PGPASSWORD=%s psql %s -XAtc %s", password, conninfo, sql
    )


def _conn(target: str, db: str, user: str, ssl: str = "verify-full") -> str:
    return (f"host={target} port=6432 dbname={db} user={user} sslmode={ssl} "
            "sslrootcert=/etc/pgbouncer/tls/ca.crt connect_timeout=5")


@pytest.mark.parametrize("target", [DB, PROXY])
def test_client_connects_through_pgbouncer_with_scram_and_tls(
        hosts: dict[str, Any], secrets: dict[str, str], target: str) -> None:
    client = hosts[DB]
    result = _psql(client, _conn(target, "warehouse", "etl"),
                   "SELECT current_user || ' ' || (SELECT ssl FROM pg_stat_ssl "
                   "WHERE pid = pg_backend_pid())",
                   secrets["vault_postgresql_etl_password"])
    assert result.rc == 0, result.stderr
    # pgBouncer itself reached PostgreSQL over TLS as the client's role.
    assert result.stdout.strip() == "etl true"
    # verify-full checked pgBouncer's certificate against the project CA: with
    # the public CAs instead, the same connection is refused.
    public = _psql(client, _conn(target, "warehouse", "etl").replace(
        "sslrootcert=/etc/pgbouncer/tls/ca.crt", "sslrootcert=/etc/ssl/certs/ca-certificates.crt"),
        "SELECT 1", secrets["vault_postgresql_etl_password"])
    assert public.rc != 0 and "certificate verify failed" in public.stderr, public.stderr


@pytest.mark.parametrize("target", [DB, PROXY])
def test_wrong_password_and_plaintext_tcp_are_refused(
        hosts: dict[str, Any], secrets: dict[str, str], target: str) -> None:
    client = hosts[DB]
    wrong = _psql(client, _conn(target, "warehouse", "etl"), "SELECT 1", "not-the-password")
    assert wrong.rc != 0 and "SASL authentication failed" in wrong.stderr
    password = secrets["vault_postgresql_etl_password"]
    plain = _psql(client, _conn(target, "warehouse", "etl", ssl="disable"), "SELECT 1", password)
    # pgBouncer's own refusal of a client without TLS (client_tls_sslmode require).
    assert plain.rc != 0 and "SSL required" in plain.stderr, plain.stderr
    # The same connection with TLS gets in: pgBouncer answers, and it is TLS
    # it asks for.
    tls = _psql(client, _conn(target, "warehouse", "etl"), "SELECT 1", password)
    assert tls.rc == 0 and tls.stdout.strip() == "1", tls.stderr


@pytest.mark.parametrize("target", [DB, PROXY])
def test_auth_file_holds_postgres_verifiers_byte_for_byte(
        hosts: dict[str, Any], target: str) -> None:
    authid = hosts[DB].check_output(
        "runuser -u postgres -- psql -XAtc \"SELECT rolname || ' ' || rolpassword FROM pg_authid "
        "WHERE rolname IN ('etl','reporting','airflow','pgbouncer_admin','pgbouncer_stats') "
        "ORDER BY 1\"")
    expected = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in authid.splitlines()}
    auth_file = hosts[target].file("/etc/pgbouncer/userlist.txt")
    assert auth_file.user == "postgres" and auth_file.mode == 0o640
    found = dict(re.findall(r'^"([^"]+)" "([^"]+)"$', auth_file.content_string, re.M))
    assert found == expected


@pytest.mark.parametrize("target", [DB, PROXY])
def test_show_databases_and_pools_reflect_the_config(
        hosts: dict[str, Any], secrets: dict[str, str], target: str) -> None:
    admin = secrets["vault_pgbouncer_admin_password"]
    client = hosts[DB]
    dbs = _psql(client, _conn(target, "pgbouncer", "pgbouncer_admin"), "SHOW DATABASES", admin)
    assert dbs.rc == 0, dbs.stderr
    rows = {line.split("|")[0]: line.split("|") for line in dbs.stdout.splitlines()}
    assert {"warehouse", "bench", "pgbouncer"} <= set(rows)
    assert rows["bench"][1] == DB  # host column
    assert rows["bench"][5] == "40"  # pool_size column
    used = _psql(client, _conn(target, "warehouse", "etl"), "SELECT 1",
                 secrets["vault_postgresql_etl_password"])
    assert used.rc == 0 and used.stdout.strip() == "1", used.stderr
    pools = _psql(client, _conn(target, "pgbouncer", "pgbouncer_admin"), "SHOW POOLS", admin)
    assert pools.rc == 0, pools.stderr
    assert any(line.startswith("warehouse|etl|") for line in pools.stdout.splitlines())
    config = _psql(client, _conn(target, "pgbouncer", "pgbouncer_admin"), "SHOW CONFIG", admin)
    assert config.rc == 0, config.stderr
    settings = {line.split("|")[0]: line.split("|")[1] for line in config.stdout.splitlines()}
    assert settings["pool_mode"] == "transaction"
    assert settings["max_client_conn"] == "1000"
    assert settings["auth_type"] == "hba"
    assert settings["auth_hba_file"] == "/etc/pgbouncer/pgbouncer_hba.conf"



def test_only_listed_networks_and_console_users_get_in(
        hosts: dict[str, Any], secrets: dict[str, str]) -> None:
    etl = secrets["vault_postgresql_etl_password"]
    admin = secrets["vault_pgbouncer_admin_password"]
    # Application users never reach the admin console, even from the host
    # itself: pgBouncer turns away a user that is neither an admin nor a
    # stats user, and lets the admin in on the same connection.
    console = _psql(hosts[DB], _conn(DB, "pgbouncer", "etl"), "SHOW POOLS", etl)
    assert console.rc != 0 and "not allowed" in console.stderr, console.stderr
    admitted = _psql(hosts[DB], _conn(DB, "pgbouncer", "pgbouncer_admin"), "SHOW POOLS", admin)
    assert admitted.rc == 0 and admitted.stdout.strip(), admitted.stderr
    # With the client and admin networks narrowed to one that holds no test
    # host, the proxy host is refused; the primary's own clients still get in.
    narrow = json.dumps({"pgbouncer_client_networks": ["10.255.255.0/24"],
                         "pgbouncer_admin_networks": ["10.255.255.0/24"]})
    play = scenario.playbook("side_effect.yml", *CONFIGURE, "--limit", DB, "-e", narrow)
    try:
        assert play.returncode == 0, play.stdout[-3000:]
        assert "RUNNING HANDLER [pgbouncer : Reload pgbouncer]" in play.stdout
        refused = _psql(hosts[PROXY], _conn(DB, "warehouse", "etl"), "SELECT 1", etl)
        # pgBouncer's hba: no line for the proxy's address but the final reject.
        assert refused.rc != 0 and "login rejected" in refused.stderr, refused.stderr
        refused_console = _psql(hosts[PROXY], _conn(DB, "pgbouncer", "pgbouncer_admin"),
                                "SHOW POOLS", admin)
        assert refused_console.rc != 0 and "login rejected" in refused_console.stderr, \
            refused_console.stderr
        local = _psql(hosts[DB], "host=127.0.0.1 port=6432 dbname=warehouse user=etl "
                      "sslmode=require connect_timeout=5", "SELECT 1", etl)
        assert local.rc == 0 and local.stdout.strip() == "1", local.stderr
    finally:
        back = scenario.playbook("side_effect.yml", *CONFIGURE, "--limit", DB)
    assert back.returncode == 0, back.stdout[-3000:]
    allowed = _psql(hosts[PROXY], _conn(DB, "warehouse", "etl"), "SELECT 1", etl)
    assert allowed.rc == 0 and allowed.stdout.strip() == "1", allowed.stderr


def test_pool_change_under_200_clients_reloads_without_dropping_anyone(
        hosts: dict[str, Any], secrets: dict[str, str], stack: dict[str, str]) -> None:
    db = hosts[DB]
    password = secrets["vault_postgresql_etl_password"]
    pgbench = f"{stack['wops_postgresql_bin_dir']}/pgbench"
    init = db.run("PGPASSWORD=%s %s -q -i -s 4 %s", password, pgbench,
                  f"host={stack['wops_postgresql_socket_dir']} dbname=bench user=etl")
    assert init.rc == 0, init.stderr
    pid_before = db.check_output("systemctl show -p MainPID --value pgbouncer")
    admin = secrets["vault_pgbouncer_admin_password"]
    before = _psql(db, _conn(DB, "pgbouncer", "pgbouncer_admin"), "SHOW CONFIG", admin)
    assert before.rc == 0, before.stderr
    current = int(re.search(r"^default_pool_size\|(\d+)\|", before.stdout, re.M).group(1))  # type: ignore[union-attr]
    new_size = current + 5
    report: dict[str, Any] = {}

    def bench() -> None:
        report["result"] = db.run(
            "PGPASSWORD=%s %s -n -c 200 -j 4 -R %s -T %s -P 10 "
            "'host=127.0.0.1 port=6432 dbname=bench user=etl sslmode=require'",
            password, pgbench, str(LOAD_RATE), str(LOAD_SECONDS))

    worker = threading.Thread(target=bench)
    load_started = time.monotonic()
    worker.start()
    # Every client connected (pgBouncer's own count) before the change.
    deadline = time.monotonic() + 30
    while True:
        clients = _psql(db, _conn(DB, "pgbouncer", "pgbouncer_admin"), "SHOW CLIENTS", admin)
        # type|user|database|state|...
        connected = sum(1 for line in clients.stdout.splitlines()
                        if line.split("|")[1:3] == ["etl", "bench"])
        if connected >= 200 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert connected >= 200, f"{connected} of 200 pgbench clients connected within 30 s"
    started = time.monotonic()
    play = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         str(Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "side_effect.yml"),
         *CONFIGURE, "-e", f"new_pool_size={new_size}", "--limit", DB],
        capture_output=True, text=True, env=scenario.ansible_env(), check=False,
    )
    play_seconds = time.monotonic() - started
    play_ended = time.monotonic() - load_started
    worker.join()
    assert play.returncode == 0, play.stdout[-3000:]
    assert "RUNNING HANDLER [pgbouncer : Reload pgbouncer]" in play.stdout
    handlers = play.stdout.split("PLAY RECAP")[0]
    assert "RUNNING HANDLER [pgbouncer : Restart pgbouncer]" not in handlers
    # The change landed while pgbench was still running.
    assert play_ended < LOAD_SECONDS - 5, \
        f"play took {play_seconds:.0f}s and ended {play_ended:.0f}s into the {LOAD_SECONDS}s load"
    result = report["result"]
    out = result.stdout + result.stderr
    assert result.rc == 0, out[-2000:]
    assert re.search(r"number of failed transactions: 0 \(0\.000%\)", out), out[-2000:]
    assert "aborted" not in out
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    assert processed and int(processed.group(1)) > 0
    # Same process: reloaded, not restarted; and the new value is in force.
    assert db.check_output("systemctl show -p MainPID --value pgbouncer") == pid_before
    config = _psql(db, _conn(DB, "pgbouncer", "pgbouncer_admin"), "SHOW CONFIG", admin)
    assert config.rc == 0, config.stderr
    assert f"default_pool_size|{new_size}|" in config.stdout


def _module(args: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ansible", "-i", os.environ["MOLECULE_INVENTORY_FILE"], DB, "-b", "--become-user",
         "postgres", "-m", "pgbouncer_auth_file", "-a", json.dumps(args), *extra],
        capture_output=True, text=True, env=scenario.ansible_env(), check=False,
    )


def test_module_check_mode_apply_and_rerun(hosts: dict[str, Any]) -> None:
    path = "/tmp/test-userlist.txt"
    hosts[DB].run("rm -f %s", path)
    args = {"path": path, "from_pg_authid": True, "owner": "postgres", "group": "postgres",
            "users": [{"name": "etl"}, {"name": "reporting"}]}
    check = _module(args, "--check", "--diff")
    assert check.returncode == 0, check.stdout
    assert "CHANGED" in check.stdout and "<redacted" in check.stdout
    assert "SCRAM-SHA-256$4096:<redacted" in check.stdout
    assert not hosts[DB].file(path).exists
    apply = _module(args)
    assert apply.returncode == 0 and "CHANGED" in apply.stdout, apply.stdout
    assert hosts[DB].file(path).exists
    rerun = _module(args)
    assert rerun.returncode == 0, rerun.stdout
    assert "SUCCESS" in rerun.stdout and "changed: false" in rerun.stdout
    # No verifier or password reaches the output.
    secret = hosts[DB].file(path).content_string.split('"')[3]
    for out in (check.stdout, apply.stdout, rerun.stdout):
        assert secret.split("$")[2] not in out


def test_module_names_a_role_missing_in_postgresql(hosts: dict[str, Any]) -> None:
    result = _module({"path": "/tmp/x.txt", "from_pg_authid": True,
                      "users": [{"name": "no_such_role"}]})
    assert result.returncode != 0
    assert "role 'no_such_role' does not exist in PostgreSQL" in result.stdout
    bad = _module({"path": "/tmp/x.txt", "users": [{"name": "bad\nname"}]})
    assert bad.returncode != 0 and "invalid user name" in bad.stdout
