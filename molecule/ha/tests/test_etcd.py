"""The etcd cluster of the HA mode: three members, TLS from the project CA, quorum.

Every member answers healthy over TLS and the cluster's members are the
etcd group's hosts; a client without a certificate of the project CA (or
without TLS) is refused; a key written on one member is read on the others;
with one member stopped the other two still take writes, with two stopped the
last one neither takes nor applies one (no quorum) and Patroni turns the
primary read-only rather than keep it without its lock, and once both are
back the cluster is whole again and Patroni has a leader. A changed setting
restarts the members one at a time, each healthy again before the next.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from testbed import patroni, scenario

MEMBERS = ["wops-mol-ha-1", "wops-mol-ha-2", "wops-mol-ha-3"]
TLS = "/etc/etcd/tls"
PORT = 2379


def _etcdctl(host: Any, endpoint: str, *args: str, timeout: str = "5s") -> Any:
    """etcdctl on a member, with its certificate, against the member named ``endpoint``."""
    return host.run(
        "etcdctl --endpoints=%s --cacert=%s --cert=%s --key=%s --dial-timeout=%s "
        "--command-timeout=%s " + " ".join(["%s"] * len(args)),
        f"https://{endpoint}:{PORT}", f"{TLS}/ca.crt", f"{TLS}/server.crt", f"{TLS}/server.key",
        timeout, timeout, *args)


def _healthy_members(host: Any, endpoint: str, wait: float = 60) -> int:
    """How many members answer healthy, once all do or after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        health = _etcdctl(host, endpoint, "endpoint", "health", "--cluster")
        count: int = (health.stdout + health.stderr).count("is healthy")
        if count == len(MEMBERS) or time.monotonic() > deadline:
            return count
        time.sleep(2)


@pytest.fixture()
def members(hosts: dict[str, Any]) -> Iterator[dict[str, Any]]:
    chosen = {name: hosts[name] for name in MEMBERS}
    yield chosen
    # Whatever a check stopped runs again afterwards.
    for host in chosen.values():
        host.run("systemctl start etcd")


def test_every_member_is_healthy_over_tls_and_the_members_are_the_group(
        members: dict[str, Any]) -> None:
    for name, host in members.items():
        health = _etcdctl(host, name, "endpoint", "health")
        assert health.rc == 0, (name, health.stderr)
        assert "is healthy" in health.stdout + health.stderr, name
    listed = json.loads(_etcdctl(members[MEMBERS[0]], MEMBERS[0], "member", "list",
                                 "--write-out=json").stdout)["members"]
    assert sorted(m["name"] for m in listed) == MEMBERS
    for member in listed:
        assert member["clientURLs"] == [f"https://{member['name']}:{PORT}"], member
        assert member["peerURLs"] == [f"https://{member['name']}:2380"], member


def test_a_client_needs_tls_and_a_certificate_of_the_project_ca(
        members: dict[str, Any]) -> None:
    host = members[MEMBERS[0]]
    # Plain HTTP: the member speaks TLS only.
    plain = host.run("curl -s -m 5 http://%s:%s/version", MEMBERS[1], str(PORT))
    assert "etcdserver" not in plain.stdout, plain.stdout
    # TLS with the project CA but no client certificate: refused.
    anonymous = host.run("curl -s -m 5 --cacert %s/ca.crt https://%s:%s/v3/kv/range -d %s",
                         TLS, MEMBERS[1], str(PORT), '{"key": "Zm9v"}')
    assert anonymous.rc != 0, anonymous.stdout
    # With the member's certificate: served.
    served = host.run("curl -s -m 5 --cacert %s/ca.crt --cert %s/server.crt --key %s/server.key "
                      "https://%s:%s/version", TLS, TLS, TLS, MEMBERS[1], str(PORT))
    assert served.rc == 0 and '"etcdserver":"3.4' in served.stdout, served.stdout


def test_a_write_on_one_member_is_read_on_the_others(members: dict[str, Any]) -> None:
    first = members[MEMBERS[0]]
    assert _etcdctl(first, MEMBERS[0], "put", "/wops-test/written-on", MEMBERS[0]).rc == 0
    for name in MEMBERS[1:]:
        read = _etcdctl(members[name], name, "get", "--print-value-only",
                        "/wops-test/written-on")
        assert read.rc == 0 and read.stdout.strip() == MEMBERS[0], (name, read.stdout,
                                                                   read.stderr)


def test_one_member_lost_changes_nothing_two_lost_stop_writes(
        members: dict[str, Any]) -> None:
    last = members[MEMBERS[2]]
    members[MEMBERS[0]].check_output("systemctl stop etcd")
    written = _etcdctl(last, MEMBERS[2], "put", "/wops-test/one-lost", "yes")
    assert written.rc == 0, written.stderr
    members[MEMBERS[1]].check_output("systemctl stop etcd")
    refused = _etcdctl(last, MEMBERS[2], "put", "/wops-test/two-lost", "yes", timeout="3s")
    assert refused.rc != 0, refused.stdout
    assert "deadline exceeded" in refused.stderr or "timed out" in refused.stderr, refused.stderr
    # Nothing was applied without a quorum: the last member's own store (a
    # serializable read, which needs no quorum) does not hold the key, while a
    # read that needs the quorum is refused too.
    local = _etcdctl(last, MEMBERS[2], "get", "--consistency=s", "--print-value-only",
                     "/wops-test/two-lost")
    assert local.rc == 0 and local.stdout.strip() == "", (local.stdout, local.stderr)
    assert _etcdctl(last, MEMBERS[2], "get", "/wops-test/one-lost", timeout="3s").rc != 0
    # Patroni, which keeps its leader lock here, demotes the primary rather
    # than keep a lock it can no longer renew: within ttl every member's
    # server is read-only, and at no point do two take writes.
    deadline = time.monotonic() + 75
    while True:
        writable = patroni.primaries(members)
        assert len(writable) <= 1, f"two primaries without a quorum: {writable}"
        if not writable or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert writable == [], f"{writable} still took writes 75 s after the quorum was lost"
    # Back: the cluster is whole again, with the write made while one member
    # was lost. (A proposal the client gave up on may still be committed once
    # the quorum is back: the client was told it timed out, not that it failed.)
    for name in MEMBERS[:2]:
        members[name].check_output("systemctl start etcd")
    assert _healthy_members(last, MEMBERS[2]) == len(MEMBERS)
    kept = _etcdctl(members[MEMBERS[0]], MEMBERS[0], "get", "--print-value-only",
                    "/wops-test/one-lost")
    assert kept.stdout.strip() == "yes", kept.stdout
    # With the quorum back, Patroni elects a leader again, and the others follow it.
    leader, _ = patroni.wait_for_leader(members, timeout=120)
    patroni.wait_for_members(members, leader, replicas=2)


def _main_pid(host: Any) -> str:
    pid: str = host.check_output("systemctl show -p MainPID --value etcd")
    return pid


def test_a_changed_setting_restarts_the_members_one_at_a_time(members: dict[str, Any]) -> None:
    before = {name: _main_pid(host) for name, host in members.items()}
    changed = scenario.playbook("converge.yml", "--tags", "etcd", "-e",
                                "etcd_auto_compaction_retention=2")
    try:
        assert changed.returncode == 0, scenario.failed_sections(changed.stdout)
        # Every member restarted, each followed by its health wait before the next restart.
        order = re.findall(r"^TASK \[etcd : (Restart the member|Wait for the restarted member) "
                           r"(\S+)\]", changed.stdout, re.M)
        restarted = [name for _, name in order[::2]]
        assert sorted(restarted) == MEMBERS, order
        assert order == [(step, name) for name in restarted
                         for step in ("Restart the member", "Wait for the restarted member")], order
        for name, host in members.items():
            assert _main_pid(host) != before[name], name
            assert 'ETCD_AUTO_COMPACTION_RETENTION="2"' in host.file(
                "/etc/etcd/warehouse-ops.env").content_string
        assert _healthy_members(members[MEMBERS[0]], MEMBERS[0]) == len(MEMBERS)
    finally:
        back = scenario.playbook("converge.yml", "--tags", "etcd")
    assert back.returncode == 0, scenario.failed_sections(back.stdout)
