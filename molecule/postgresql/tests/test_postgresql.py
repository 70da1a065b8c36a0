"""Observed state of a primary after the postgresql role: service, TLS, access, objects.

SQL runs inside the container: as the postgres OS user over the socket for
inspection, and as the application roles over TCP with TLS (verify-full
against the project CA) to check what they may and may not do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

Host = Any
# login(host, user, password, query, *, db="warehouse", sslmode="verify-full",
#       sslrootcert=<the project CA>, target=<a name to check the certificate for>)
Login = Callable[..., Any]

# The primary (the replica and the pgBouncer host have checks of their own).
testinfra_hosts = ["wops-mol-pg-primary"]


@pytest.fixture(scope="module")
def conf(stack: dict[str, str]) -> str:
    """The cluster's configuration directory."""
    return stack["wops_postgresql_conf_dir"]


def sql(host: Host, query: str, *, db: str = "postgres") -> str:
    """Run a query as the postgres superuser (peer over the socket)."""
    out: str = host.check_output("runuser -u postgres -- psql -XAtq -d %s -c %s", db, query)
    return out


@pytest.fixture(scope="module")
def login(conf: str) -> Login:
    """Runs a query as an application role over TCP to the host's own name (TLS, the CA)."""
    def run(host: Host, user: str, password: str, query: str, *, db: str = "warehouse",
            sslmode: str = "verify-full", sslrootcert: str = f"{conf}/tls/ca.crt",
            target: str = "") -> Any:
        # target: a name to check the certificate against other than the host's
        # own; the connection then goes to the loopback (libpq checks the name
        # before the server sees the login).
        where = f"host={target} hostaddr=127.0.0.1" if target else \
            f"host={host.check_output('hostname')}"
        conninfo = (f"{where} port=5432 dbname={db} user={user} "
                    f"sslmode={sslmode} sslrootcert={sslrootcert}")
        return host.run("env PGPASSWORD=%s psql -XAtq %s -c %s", password, conninfo, query)
    return run


def test_service_running_and_enabled(host: Host, stack: dict[str, str]) -> None:
    service = host.service(stack["wops_postgresql_service"])
    assert service.is_running
    assert service.is_enabled
    # server_version_num: 150004 for 15.4, 160001 for 16.1.
    assert int(sql(host, "SHOW server_version_num")) // 10000 \
        == int(stack["wops_postgresql_version"])


def test_cluster_has_data_checksums(host: Host) -> None:
    assert sql(host, "SHOW data_checksums") == "on"


def test_listens_on_every_address(host: Host) -> None:
    assert host.socket("tcp://0.0.0.0:5432").is_listening


def test_settings_come_from_the_drop_in(host: Host, conf: str) -> None:
    dropin = host.file(f"{conf}/conf.d/50-warehouse-ops.conf")
    assert dropin.user == "postgres" and dropin.mode == 0o644
    assert dropin.content_string.startswith("#\n# Ansible managed")
    # Sized for postgresql_memory_mb 1024: 25 % and 75 %.
    assert sql(host, "SHOW shared_buffers") == "256MB"
    assert sql(host, "SHOW effective_cache_size") == "768MB"
    assert sql(host, "SHOW shared_preload_libraries") == "pg_stat_statements"
    assert sql(host, "SHOW log_min_duration_statement") == "5s"
    # And they come from the drop-in, not postgresql.conf or ALTER SYSTEM.
    assert sql(host, "SELECT DISTINCT sourcefile FROM pg_settings WHERE name IN "
                     "('shared_buffers', 'effective_cache_size', 'shared_preload_libraries', "
                     "'log_min_duration_statement')") == dropin.path
    # Nothing waits for a restart and no file entry is in error.
    assert sql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"
    assert sql(host, "SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL") == "0"


def test_tls_is_on_with_the_project_certificate(
        host: Host, secrets: dict[str, str], conf: str, login: Login) -> None:
    assert sql(host, "SHOW ssl") == "on"
    assert sql(host, "SHOW ssl_min_protocol_version") == "TLSv1.2"
    key = host.file(f"{conf}/tls/server.key")
    assert key.user == "postgres" and key.mode == 0o600
    # verify-full: the certificate chains to the CA and names the host.
    password = secrets["vault_postgresql_reporting_password"]
    result = login(host, "reporting", password,
                   "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip().startswith("t|TLSv1.")
    # And the client really checks both: with the public CAs instead of the
    # project CA the handshake fails, and with the project CA a name the
    # certificate does not carry is refused, on the same server.
    public = login(host, "reporting", password, "SELECT 1",
                   sslrootcert="/etc/ssl/certs/ca-certificates.crt")
    assert public.rc != 0 and "certificate verify failed" in public.stderr, public.stderr
    other = login(host, "reporting", password, "SELECT 1", target="not-this-server.invalid")
    assert other.rc != 0, other.stdout
    assert 'does not match host name "not-this-server.invalid"' in other.stderr, other.stderr


def test_connections_without_tls_are_rejected(
        host: Host, secrets: dict[str, str], login: Login) -> None:
    password = secrets["vault_postgresql_reporting_password"]
    result = login(host, "reporting", password, "SELECT 1", sslmode="disable")
    assert result.rc != 0
    # The hostnossl reject line's verdict, for this connection without encryption.
    assert "pg_hba.conf rejects connection for host" in result.stderr, result.stderr
    assert 'user "reporting", database "warehouse", no encryption' in result.stderr, result.stderr
    # The same login with TLS gets in: the server is up, and TLS is what it wants.
    tls = login(host, "reporting", password, "SELECT 1")
    assert tls.rc == 0 and tls.stdout.strip() == "1", tls.stderr


def test_scram_sha_256_only(host: Host, secrets: dict[str, str], conf: str, login: Login) -> None:
    assert sql(host, "SHOW password_encryption") == "scram-sha-256"
    methods = sql(host, "SELECT DISTINCT type || ':' || auth_method FROM pg_hba_file_rules "
                        "WHERE error IS NULL ORDER BY 1").splitlines()
    assert set(methods) <= {"local:peer", "local:scram-sha-256", "hostssl:scram-sha-256",
                            "hostnossl:reject"}
    assert {"local:peer", "hostssl:scram-sha-256", "hostnossl:reject"} <= set(methods)
    # peer only for the postgres OS user, and no trust anywhere.
    assert sql(host, "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'peer' "
                     "AND user_name <> '{postgres}'") == "0"
    assert "trust" not in host.file(f"{conf}/pg_hba.conf").content_string
    # Every login role's password is a SCRAM verifier.
    assert sql(host, "SELECT count(*) FROM pg_authid WHERE rolcanlogin AND rolpassword IS NOT NULL "
                     "AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'") == "0"
    wrong = login(host, "reporting", "not-the-password", "SELECT 1")
    assert wrong.rc != 0 and "password authentication failed" in wrong.stderr


def test_roles_as_declared(host: Host) -> None:
    rows = sql(host, "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, "
                     "rolreplication FROM pg_roles WHERE rolname IN "
                     "('etl','reporting','airflow','monitoring','admin','replicator','backup') "
                     "ORDER BY 1")
    assert rows.splitlines() == [
        "admin|t|f|t|t|f",
        "airflow|t|f|f|f|f",
        "backup|t|f|f|f|f",
        "etl|t|f|f|f|f",
        "monitoring|t|f|f|f|f",
        "replicator|t|f|f|f|t",
        "reporting|t|f|f|f|f",
    ]
    assert sql(host, "SELECT pg_has_role('monitoring', 'pg_monitor', 'member')") == "t"
    assert sql(host, "SELECT pg_has_role('admin', 'pg_read_all_data', 'member')") == "t"
    assert sql(host, "SELECT pg_has_role('backup', 'pg_read_all_data', 'member')") == "t"


def test_databases_as_declared(host: Host) -> None:
    rows = sql(host, "SELECT datname, pg_get_userbyid(datdba), pg_encoding_to_char(encoding) "
                     "FROM pg_database WHERE datname IN ('warehouse', 'airflow') ORDER BY 1")
    assert rows.splitlines() == ["airflow|airflow|UTF8", "warehouse|etl|UTF8"]
    assert sql(host, "SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements'",
               db="warehouse") == "pg_stat_statements"
    # Only granted roles connect to the warehouse.
    assert sql(host, "SELECT has_database_privilege('airflow', 'warehouse', 'CONNECT')") == "f"
    assert sql(host, "SELECT has_database_privilege('reporting', 'warehouse', 'CONNECT')") == "t"


def test_schema_migrations_ran_once(host: Host) -> None:
    assert sql(host, "SELECT string_agg(version, ',') FROM schema_migrations",
               db="warehouse") == "0001"
    assert sql(host, "SELECT tableowner FROM pg_tables WHERE tablename = 'sales'",
               db="warehouse") == "etl"


def test_etl_writes_and_reporting_only_reads(
        host: Host, secrets: dict[str, str], login: Login) -> None:
    etl = secrets["vault_postgresql_etl_password"]
    reporting = secrets["vault_postgresql_reporting_password"]
    wrote = login(host, "etl", etl, "INSERT INTO sales VALUES (424242, 9.99) "
                                    "ON CONFLICT (order_id) DO UPDATE SET amount = 9.99")
    assert wrote.rc == 0, wrote.stderr
    read = login(host, "reporting", reporting, "SELECT amount FROM sales WHERE order_id = 424242")
    assert read.rc == 0 and read.stdout.strip() == "9.99", read.stderr
    insert = login(host, "reporting", reporting, "INSERT INTO sales VALUES (1, 1)")
    assert insert.rc != 0 and "permission denied for table sales" in insert.stderr
    create = login(host, "reporting", reporting, "CREATE TABLE public.scratch (x int)")
    assert create.rc != 0 and "permission denied for schema public" in create.stderr
    # New schemas and tables of etl are readable without another grant.
    made = login(host, "etl", etl, "CREATE SCHEMA IF NOT EXISTS mart; "
                                   "CREATE TABLE IF NOT EXISTS mart.daily (d date)")
    assert made.rc == 0, made.stderr
    seen = login(host, "reporting", reporting, "SELECT count(*) FROM mart.daily")
    assert seen.rc == 0, seen.stderr
    assert login(host, "etl", etl, "DROP SCHEMA mart CASCADE; "
                                   "DELETE FROM sales WHERE order_id = 424242").rc == 0


def test_reporting_cannot_reach_the_airflow_database(
        host: Host, secrets: dict[str, str], login: Login) -> None:
    result = login(host, "reporting", secrets["vault_postgresql_reporting_password"],
                   "SELECT 1", db="airflow")
    assert result.rc != 0 and "no pg_hba.conf entry" in result.stderr


def test_airflow_owns_its_database(host: Host, secrets: dict[str, str], login: Login) -> None:
    result = login(host, "airflow", secrets["vault_postgresql_airflow_password"],
                   "CREATE TABLE IF NOT EXISTS probe (x int); DROP TABLE probe", db="airflow")
    assert result.rc == 0, result.stderr


def test_monitoring_reads_statistics(host: Host, secrets: dict[str, str], login: Login) -> None:
    result = login(host, "monitoring", secrets["vault_postgresql_monitoring_password"],
                   # pg_ls_waldir() is for pg_monitor members only; and the query
                   # text of another role's session (the psql below) is visible.
                   "SELECT (SELECT count(*) > 0 FROM pg_ls_waldir()) AND "
                   "(SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = 'postgres' "
                   "AND query <> '<insufficient privilege>')",
                   db="postgres")
    assert result.rc == 0 and result.stdout.strip() == "t", result.stderr


def test_no_failed_units(host: Host) -> None:
    assert host.check_output("systemctl --failed --no-legend --plain") == ""
