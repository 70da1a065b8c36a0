"""common role: bad input fails in preflight, naming the variable, before any change.

The role runs in check mode, preflight tags only, on the controller itself
(a local connection: the role leaves sshd alone there, but checks its
settings). The controller's systemd judges the journal retention and its
group database the groups sshd is to allow. If a check ever let bad input
through, check mode and the tag filter would still keep the controller
unchanged.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]
_json = controller.extra_vars


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return controller.run(
        tmp_path,
        "all:\n  hosts:\n    probe:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {ROOT}/.venv/bin/python\n"
        "      wops_environment: dev\n",
        "- name: Base configuration\n  hosts: probe\n  roles:\n    - role: common\n",
        "--check", "--tags", "common_preflight", *extra)


# Each case: its -e arguments, what the refusal names and the fix it gives.
_CASES: list[tuple[list[str], str, str]] = [
    (_json(common_timezone="Europe Berlin"), "common_timezone (Europe Berlin)",
     "a tzdata name such as Etc/UTC"),
    (["-e", "common_sshd_max_auth_tries=0"], "common_sshd_max_auth_tries is 0",
     "set sshd's MaxAuthTries to at least 1"),
    (["-e", "common_sshd_client_alive_interval=0"], "common_sshd_client_alive_interval is 0",
     "set sshd's ClientAliveInterval to at least 1 second"),
    (["-e", "common_journald_system_max_use=1GB"], "common_journald_system_max_use is '1GB'",
     "the units K, M, G, T, P, E"),
    (["-e", "common_journald_runtime_max_use=128m"], "common_journald_runtime_max_use is '128m'",
     "(upper case, base 1024, no space)"),
    (["-e", "common_journald_system_max_use=0"], "common_journald_system_max_use is '0'",
     "journald wants a size above 0"),
    (_json(common_journald_max_retention="1 mnth"), "common_journald_max_retention is '1 mnth'",
     "systemd-analyze timespan"),
    (_json(common_ntp_servers=["ntp://ntp0.example.internal"]),
     "common_ntp_servers has 'ntp://ntp0.example.internal'", "without a scheme, port"),
    (_json(common_ntp_fallback_servers=["ntp.example.internal iburst"]),
     "common_ntp_fallback_servers has 'ntp.example.internal iburst'",
     "not a host name or an IP address"),
    (["-e", "common_pip_index_url=packages.example.internal/simple"],
     "common_pip_index_url is 'packages.example.internal/simple'",
     "write the package index as an http://, https:// or file:// URL"),
    (_json(common_sshd_allow_groups=["root", "wops-no-such-group"]),
     "common_sshd_allow_groups lists wops-no-such-group", "Create the group first"),
]


def test_bad_input_fails_in_preflight(tmp_path: Path) -> None:
    """Every case of _CASES a host of one run, each refused before the first install task."""
    cases = {f"case{i}": (extra, texts) for i, (extra, *texts) in enumerate(_CASES)}
    results = controller.run_cases(
        tmp_path,
        "all:\n  vars:\n    ansible_connection: local\n"
        f"    ansible_python_interpreter: {ROOT}/.venv/bin/python\n"
        "    wops_environment: dev\n",
        "probes", {name: controller.vars_of(extra) for name, (extra, _) in cases.items()},
        "- name: Base configuration\n  hosts: cases\n  roles:\n    - role: common\n",
        "--check", "--tags", "common_preflight")
    problems = controller.cases_refused(
        results, {name: tuple(texts) for name, (_, texts) in cases.items()},
        not_reached=("Install base packages",))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("extra", [
    [],
    _json(common_ntp_servers=["10.0.0.1", "fd00::123", "ntp1.example.internal"],
          common_journald_system_max_use="1.5G", common_journald_max_retention="2weeks",
          common_pip_index_url="https://packages.example.internal/simple",
          common_sshd_allow_groups=["root"]),
    # Settings the host does not use are not checked.
    _json(common_timesync_enabled=False, common_ntp_servers=["ntp://x"],
          common_sshd_harden=False, common_sshd_max_auth_tries=0),
])
def test_good_input_passes_preflight(tmp_path: Path, extra: list[str]) -> None:
    proc = _run(tmp_path, *extra)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "changed=0" in proc.stdout


def test_every_problem_is_named_in_one_run(tmp_path: Path) -> None:
    """A time zone, an sshd limit and both journald sizes wrong at once: one run names each."""
    proc = _run(tmp_path, *_json(common_timezone="Europe Berlin", common_sshd_max_auth_tries=0,
                                 common_journald_system_max_use="1GB",
                                 common_journald_runtime_max_use="128m"))
    controller.assert_refused(
        proc, "common_timezone (Europe Berlin)", "common_sshd_max_auth_tries is 0",
              "common_journald_system_max_use is '1GB'",
              "common_journald_runtime_max_use is '128m'",
        not_reached=("Install base packages",))
