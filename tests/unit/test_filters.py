"""The stack's filter plugins (plugins/filter/wops_filters.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pgbouncer_auth
import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins/filter"))

from wops_filters import (  # noqa: E402
    FilterModule,
    wops_address,
    wops_patroni_leader,
    wops_patroni_patch,
    wops_problems,
    wops_scram_verifier,
)

HOSTVARS = {
    "db1": {"ansible_host": "10.0.0.5"},
    "db2": {"ansible_host": "127.0.0.1", "wops_host_address": "db2.internal"},
    "db3": {},
    "db4": {"ansible_host": ""},
}


def test_peers_use_the_inventory_address_then_ansible_host_then_the_name() -> None:
    assert wops_address("db1", HOSTVARS) == "10.0.0.5"
    # The controller reaches db2 through a published port; its peers do not.
    assert wops_address("db2", HOSTVARS) == "db2.internal"
    assert wops_address("db3", HOSTVARS) == "db3"
    assert wops_address("db4", HOSTVARS) == "db4"


def test_a_name_outside_the_inventory_is_used_as_it_is() -> None:
    assert wops_address("pg.example.internal", HOSTVARS) == "pg.example.internal"
    assert wops_address("", HOSTVARS) == ""


def test_the_filter_is_registered_under_its_name() -> None:
    assert FilterModule().filters()["wops_address"] is wops_address


def test_scram_verifier_is_stored_as_sent_and_no_password_reaches_the_log(server: Any) -> None:
    password = "n0t-in-any-log \u00e4"
    verifier = wops_scram_verifier(password)
    assert verifier.startswith("SCRAM-SHA-256$4096:")
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("SET log_statement = 'all'")
        conn.execute(sql.SQL("CREATE ROLE scram_probe LOGIN PASSWORD {}").format(
            sql.Literal(verifier)))
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_probe'"
                           ).fetchone()
    assert row is not None
    # PostgreSQL keeps a verifier it is sent as it is (it does not hash it again).
    assert row[0] == verifier
    assert pgbouncer_auth.verifier_matches(password, row[0])
    log = server.logfile.read_text()
    assert "CREATE ROLE scram_probe" in log
    assert password not in log


def test_scram_verifier_keeps_a_matching_stored_verifier_and_salts_a_new_one() -> None:
    first = wops_scram_verifier("pw-one")
    # The same password: the stored verifier comes back, byte for byte.
    assert wops_scram_verifier("pw-one", first) == first
    # A new password, no stored verifier or an unreadable one: a fresh salt each time.
    for stored in (first, None, "", "md5abc", "SCRAM-SHA-256$4096:!!$x:y"):
        fresh = wops_scram_verifier("pw-two", stored)
        assert fresh != first and pgbouncer_auth.verifier_matches("pw-two", fresh)
    assert wops_scram_verifier("pw-two") != wops_scram_verifier("pw-two")


def test_scram_verifier_refuses_an_empty_password() -> None:
    with pytest.raises(ValueError, match="password is empty"):
        wops_scram_verifier("")


class _Unread:
    """A message that must not be read (a lazily templated one that would fail)."""

    def __str__(self) -> str:
        raise AssertionError("a passing check's message was read")


def test_problems_lists_every_failing_check_in_order() -> None:
    checks: list[Any] = [
        {"that": True, "msg": _Unread()},
        {"that": False, "msg": "first"},
        {"that": [True, False], "msg": "second"},
        {"that": False, "msg": "skipped", "when": False},
        {"that": [False, "never read"], "msg": "third"},
        {"problems": ["fourth", "fifth"]},
        {"problems": [], "when": True},
        {"problems": "not read", "when": False},
    ]
    assert wops_problems(checks) == ["first", "second", "third", "fourth", "fifth"]
    assert wops_problems([]) == []
    assert FilterModule().filters()["wops_problems"] is wops_problems


@pytest.mark.parametrize(("checks", "error"), [
    ({"that": True, "msg": "x"}, "must be a list of mappings"),
    (["that"], "check 0 is str, not a mapping"),
    ([{"that": True}], "check 0 has the keys ['that']"),
    ([{"msg": "x"}], "check 0 has the keys ['msg']"),
    ([{"that": True, "msg": "x", "problems": []}], "give that and msg, or problems"),
    ([{"that": True, "msg": "x", "fix": "y"}], "check 0 has the keys"),
    ([{"that": "False", "msg": "x"}], "check 0's that is 'False' (str), not a boolean"),
    ([{"that": True, "msg": "x", "when": "yes"}], "check 0's when is 'yes'"),
    ([{"problems": "one message"}], "check 0's problems is str, not a list of messages"),
])
def test_problems_refuses_a_malformed_check(checks: Any, error: str) -> None:
    with pytest.raises((TypeError, ValueError), match=re.escape(error)):
        wops_problems(checks)


def test_patroni_patch_is_empty_when_etcd_has_the_inventorys_configuration() -> None:
    desired = {"ttl": 30, "synchronous_mode": False,
               "postgresql": {"use_pg_rewind": True, "parameters": {"max_connections": "100"}}}
    # Patroni keeps what it was sent; 100 and "100", False and "off" are one setting.
    current = {"ttl": "30", "synchronous_mode": "off", "slots": {},
               "postgresql": {"use_pg_rewind": True, "parameters": {"max_connections": 100}}}
    assert wops_patroni_patch(current, desired) == {}


def test_patroni_patch_sets_what_differs_and_removes_hand_set_parameters() -> None:
    desired = {"ttl": 30, "loop_wait": 10,
               "postgresql": {"use_slots": True, "parameters": {"max_connections": "200"}}}
    current = {"ttl": 20, "postgresql": {
        "use_slots": True, "parameters": {"max_connections": "100", "work_mem": "1GB"}}}
    assert wops_patroni_patch(current, desired) == {
        "ttl": 30, "loop_wait": 10,
        "postgresql": {"parameters": {"max_connections": "200", "work_mem": None}}}


def test_patroni_patch_refuses_what_is_not_a_configuration() -> None:
    with pytest.raises(TypeError, match="mappings"):
        wops_patroni_patch("ttl: 30", {})  # type: ignore[arg-type]


def test_patroni_leader_is_the_first_view_naming_one() -> None:
    down: dict[str, Any] = {}
    replicas_only = {"members": [{"name": "db2", "role": "replica"}]}
    led = {"members": [{"name": "db2", "role": "replica"}, {"name": "db3", "role": "leader"}]}
    other = {"members": [{"name": "db1", "role": "leader"}]}
    assert wops_patroni_leader([down, replicas_only, led, other]) == "db3"
    # Patroni 2 said master, newer releases primary.
    assert wops_patroni_leader([{"members": [{"name": "db1", "role": "master"}]}]) == "db1"


def test_patroni_leader_is_empty_when_no_view_names_one() -> None:
    assert wops_patroni_leader([]) == ""
    assert wops_patroni_leader([{}, None, {"members": [{"name": "db2", "role": "replica"}]}]) == ""
    assert FilterModule().filters()["wops_patroni_leader"] is wops_patroni_leader
