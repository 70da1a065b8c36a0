"""etcd role: bad input fails in preflight, naming the variable, before any change.

The role runs in check mode, preflight tags only, on local hosts in the etcd
group. If a check ever let bad input through, check mode and the tag filter
would still keep the controller unchanged.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]
_json = controller.extra_vars


def _run(tmp_path: Path, *extra: str, members: int = 3,
         limit: str = "all") -> subprocess.CompletedProcess[str]:
    hosts = "".join(f"        etcd{i}:\n" for i in range(1, members + 1))
    return controller.run(
        tmp_path,
        controller.local_hosts(variables="    etcd_listen_address: 127.0.0.1\n")
        + "  children:\n    etcd:\n      hosts:\n" + hosts,
        "- name: The etcd cluster\n  hosts: etcd\n  roles:\n    - role: etcd\n",
        "--check", "--tags", "etcd_preflight", "--limit", limit, *extra)


@pytest.mark.parametrize(("members", "named"), [
    (1, "the etcd group has 1 host(s) (etcd1); an etcd cluster needs an odd number of members, "
        "three or more"),
    (2, "the etcd group has 2 host(s) (etcd1, etcd2)"),
    (4, "the etcd group has 4 host(s) (etcd1, etcd2, etcd3, etcd4)"),
])
def test_an_even_or_too_small_membership_is_refused(tmp_path: Path, members: int,
                                                   named: str) -> None:
    proc = _run(tmp_path, members=members)
    controller.assert_refused(proc, named, "Put 3 or 5 hosts in the etcd group",
                              not_reached=("Install etcd",))


@pytest.mark.parametrize(("extra", "named", "fix"), [
    (["-e", "etcd_listen_address=eth0"], "etcd_listen_address is 'eth0'",
     "etcd listens on an IP address only"),
    (["-e", "etcd_election_timeout=3000"], "etcd_election_timeout (3000 ms) must be at least five",
     "etcd_heartbeat_interval (1000 ms)"),
    (["-e", "etcd_data_dir=/var/lib/etcd/default"], "etcd_data_dir is '/var/lib/etcd/default'",
     "not the package's"),
    (["-e", "wops_etcd_peer_port=2379"], "wops_etcd_client_port (2379) and wops_etcd_peer_port "
     "(2379) must be two different TCP ports", "1 to 65535"),
])
def test_bad_input_fails_in_preflight(tmp_path: Path, extra: list[str], named: str,
                                      fix: str) -> None:
    proc = _run(tmp_path, *extra)
    controller.assert_refused(proc, named, fix, not_reached=("Install etcd",))


def test_a_play_that_leaves_a_member_out_is_refused(tmp_path: Path) -> None:
    proc = _run(tmp_path, limit="etcd1,etcd2")
    controller.assert_refused(
        proc, "the play runs on etcd1, etcd2 of the etcd group's etcd1, etcd2, etcd3",
        "without a --limit that leaves one out", not_reached=("Install etcd",))


def test_every_problem_is_named_in_one_run(tmp_path: Path) -> None:
    proc = _run(tmp_path, "-e", "etcd_listen_address=eth0", "-e", "etcd_election_timeout=100",
                members=2)
    controller.assert_refused(
        proc, "the etcd group has 2 host(s)", "etcd_listen_address is 'eth0'",
        "etcd_election_timeout (100 ms)", not_reached=("Install etcd",))


def test_good_input_passes_preflight(tmp_path: Path) -> None:
    proc = _run(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "changed=0" in proc.stdout
