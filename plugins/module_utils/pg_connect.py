"""Connection options and connecting for the project's PostgreSQL modules.

The modules take the same login options as community.postgresql's (login_user,
login_password, login_host, login_unix_socket, login_port, login_db, ssl_mode,
ca_cert) so that plays can pass one set of connection variables to either.
The options are documented once, in plugins/doc_fragments/pg_login.py;
tests/unit/test_module_docs.py checks that the two agree. psycopg2 is the
driver Debian ships as python3-psycopg2 on the hosts.
"""

from __future__ import annotations

from typing import Any

SSL_MODES = ["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]


def connection_argument_spec(default_db: str) -> dict[str, dict[str, Any]]:
    """The login options, for a module's argument_spec (documented by the pg_login fragment).

    default_db is the module's default for login_db, which its DOCUMENTATION
    states as the one login option it documents itself.
    """
    return {
        "login_db": {"type": "str", "default": default_db},
        "login_user": {"type": "str", "default": "postgres"},
        "login_password": {"type": "str", "default": "", "no_log": True},
        "login_host": {"type": "str", "default": ""},
        "login_unix_socket": {"type": "str", "default": "/var/run/postgresql"},
        # port was the option's name before community.postgresql's login_port.
        "login_port": {"type": "int", "default": 5432, "aliases": ["port"]},
        "ssl_mode": {"type": "str", "default": "prefer", "choices": SSL_MODES},
        "ca_cert": {"type": "str", "aliases": ["ssl_rootcert"]},
        "connect_timeout": {"type": "int", "default": 10},
    }


def import_driver(module: Any, purpose: str) -> Any:
    """psycopg2, or a failure saying how to install it."""
    try:
        import psycopg2  # type: ignore[import-untyped]
    except ImportError:
        module.fail_json(msg=f"{purpose} needs psycopg2 on the host (apt install python3-psycopg2)")
    return psycopg2


def connect(module: Any, driver: Any, application_name: str) -> Any:
    """A connection from the module's login options; fails the module on error."""
    p = module.params
    kwargs: dict[str, Any] = {
        "user": p["login_user"], "dbname": p["login_db"], "port": p["login_port"],
        "host": p["login_host"] or p["login_unix_socket"],
        "sslmode": p["ssl_mode"],
        "connect_timeout": p["connect_timeout"],
        "application_name": application_name,
    }
    if p["ca_cert"]:
        kwargs["sslrootcert"] = p["ca_cert"]
    if p["login_password"]:
        kwargs["password"] = p["login_password"]
    try:
        return driver.connect(**kwargs)
    except driver.Error as exc:
        module.fail_json(msg=f"cannot connect to PostgreSQL database {p['login_db']} as "
                             f"{p['login_user']} on port {p['login_port']}: {str(exc).strip()}")
    return None  # unreachable: fail_json exits
