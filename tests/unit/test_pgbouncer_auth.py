"""The auth_file helpers, checked against a real PostgreSQL's verifiers."""

from __future__ import annotations

import pgbouncer_auth as pa
import psycopg
import pytest
from psycopg import sql

from testbed.pgserver import DevServer


def _verifier_from_postgres(server: DevServer, role: str, password: str) -> str:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                           (role,)).fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize(("role", "password"), [
    ("etl", "s3cret-Pa55"),
    ("reporting", "with space and \"quotes\""),
    ("unicode", "p\u00e4ssw\u00f6rd \uff46\uff55\uff4c\uff4c"),  # NFKC: full-width letters
])
def test_recomputed_verifier_is_byte_identical_to_postgres(server: DevServer, role: str,
                                                            password: str) -> None:
    stored = _verifier_from_postgres(server, role, password)
    iterations, salt, _s, _k = pa.parse_verifier(stored)
    assert pa.scram_verifier(password, salt, iterations) == stored
    assert pa.verifier_matches(password, stored)
    assert not pa.verifier_matches(password + "x", stored)


def test_parse_and_render_round_trip_with_quotes() -> None:
    users = {'we"ird': "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB", "etl": "md5abc"}
    text = pa.render_auth_file(users)
    assert text.splitlines()[1] == '"we""ird" "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB"'
    assert pa.parse_auth_file(text) == users
    assert pa.render_auth_file(pa.parse_auth_file(text)) == text


def test_parse_rejects_a_malformed_line_naming_it() -> None:
    with pytest.raises(pa.AuthFileError, match="line 2"):
        pa.parse_auth_file('"a" "b"\nbroken line\n')


def test_redaction_hides_every_part_of_the_secret_but_shows_a_change() -> None:
    secret = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVka2V5:c2VydmVya2V5"
    shown = pa.redact(secret)
    for part in ("c2FsdHNhbHQ=", "c3RvcmVka2V5", "c2VydmVya2V5"):
        assert part not in shown
    assert shown.startswith("SCRAM-SHA-256$4096:<redacted ")
    assert pa.redact(secret) != pa.redact(secret.replace("c3Rv", "d3Rv"))


def test_bad_verifiers_and_names_are_refused() -> None:
    with pytest.raises(pa.AuthFileError, match="not a SCRAM-SHA-256 verifier"):
        pa.parse_verifier("md5deadbeef")
    with pytest.raises(pa.AuthFileError, match="invalid user name"):
        pa.check_name("bad\nname")
