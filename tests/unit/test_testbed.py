"""The testbed's own checks: name resolution on podman networks, peers reached,
a run's output read task by task.

The podman stand-ins below answer only what scripts/lib.sh asks; what is under
test is lib.sh's decision and its message, on a machine whose podman would
give user networks no DNS. testbed/reach.py runs against the loopback.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from testbed import scenario, secret_search

ROOT = Path(__file__).resolve().parents[2]


def _reach() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reach", ROOT / "testbed/reach.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_podman(tmp_path: Path, backend: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    podman = bindir / "podman"
    podman.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f"  *NetworkBackend*) echo {backend} ;;\n"
        "  *) exit 0 ;;\n"
        "esac\n"
    )
    podman.chmod(0o755)
    return bindir


def _lib(call: str, bindir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'source {ROOT}/scripts/lib.sh; PATH="{bindir}:$PATH"; {call}'],
        capture_output=True, text=True, check=False,
    )


def test_cni_backend_is_refused_with_one_line_naming_the_fix(tmp_path: Path) -> None:
    proc = _lib("wops_podman_dns", _fake_podman(tmp_path, "cni"))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "'cni' network backend" in lines[0]
    assert "no name resolution" in lines[0]
    assert "apt-get install netavark aardvark-dns" in lines[0]


def test_netavark_backend_is_accepted(tmp_path: Path) -> None:
    proc = _lib("wops_podman_dns && echo accepted", _fake_podman(tmp_path, "netavark"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "accepted"


def test_repository_containers_conf_selects_netavark() -> None:
    conf = (ROOT / "testbed/containers.conf").read_text()
    network = conf.split("[network]", 1)[1]
    assert 'network_backend = "netavark"' in network


def test_lib_installs_the_packages_name_resolution_needs() -> None:
    lib = (ROOT / "scripts/lib.sh").read_text()
    packages = lib.split("WOPS_DEB_PACKAGES=(", 1)[1].split(")", 1)[0].split()
    for name in ("podman", "runc", "netavark", "aardvark-dns", "iptables", "openssh-client"):
        assert name in packages, name


def test_bin_test_installs_what_the_browser_test_needs(tmp_path: Path) -> None:
    # bin/test adds the browser test's packages to the controller's own.
    assert 'wops_install_packages "${WOPS_TEST_DEB_PACKAGES[@]}"' in (
        ROOT / "bin/test").read_text()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "apt.log"
    fakes = {
        # Everything is installed but the browser test's packages.
        "dpkg-query": 'case "$3" in chromium|libnss3-tools|fonts-liberation) exit 1 ;; '
                      "*) printf 'install ok installed' ;; esac",
        "apt-get": f'echo "$*" >>{log}',
        "systemctl": "exit 0",
    }
    for name, body in fakes.items():
        (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / name).chmod(0o755)
    proc = _lib('wops_install_packages "${WOPS_TEST_DEB_PACKAGES[@]}"', bindir)
    assert proc.returncode == 0, proc.stderr
    install = log.read_text().splitlines()[-1].split()
    assert "--no-install-recommends" in install
    assert {"chromium", "libnss3-tools", "fonts-liberation"} <= set(install), install
    assert "podman" not in install
    # The Python side: Playwright, pinned with the toolchain.
    pins = (ROOT / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("playwright==") for line in pins)


def test_reach_accepts_a_host_that_refuses_the_probe() -> None:
    # Nothing listens on the probe port of the loopback: refused means reached.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", 1)) != 0
    assert _reach().problem("127.0.0.1") is None


def test_reach_names_a_host_that_does_not_resolve() -> None:
    reach = _reach()
    problem = reach.problem("wops-no-such-host.invalid")
    assert problem is not None
    assert problem.startswith("wops-no-such-host.invalid: name does not resolve")
    assert reach.main(["127.0.0.1", "wops-no-such-host.invalid"]) == 1


def test_reach_script_prints_one_line_per_failing_host() -> None:
    proc = subprocess.run(
        ["python3", str(ROOT / "testbed/reach.py"),
         "127.0.0.1", "wops-a.invalid", "wops-b.invalid"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == [
        "wops-a.invalid", "wops-b.invalid"]


@pytest.mark.parametrize("scenario", sorted(
    p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml")))
def test_every_scenario_prepares_through_the_testbed_check(scenario: str) -> None:
    """Each scenario's prepare is the shared one, or imports it first."""
    config = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text())
    prepare = (config.get("provisioner", {}).get("playbooks", {}) or {}).get("prepare")
    if prepare is None:
        return  # the base config's molecule/_shared/prepare.yml
    plays = yaml.safe_load((ROOT / "molecule" / scenario / prepare).read_text())
    assert plays[0].get("ansible.builtin.import_playbook") == "../_shared/prepare.yml"
    shared = yaml.safe_load((ROOT / "molecule/_shared/prepare.yml").read_text())
    assert shared[0]["ansible.builtin.import_playbook"].endswith("playbooks/testbed_ready.yml")


def test_molecule_installs_nothing_before_a_scenario() -> None:
    """No prerun: it runs ansible-galaxy (network), and two lanes race on a new machine."""
    base = yaml.safe_load((ROOT / ".config/molecule/config.yml").read_text())
    assert base["prerun"] is False
    for path in (ROOT / "molecule").glob("*/molecule.yml"):
        config = yaml.safe_load(path.read_text())
        assert config.get("prerun", False) is False, path


# A run as the default callback prints it with JSON results and profile_tasks
# (the fatal result is one line).
_RUN = """
PLAY [Converge the airflow role again] *****************************************

TASK [airflow : Check for pending migrations with the release's Airflow] *******
Monday 01 June 2026  10:00:00 +0000 (0:00:01.000)       0:00:05.000 **********
ok: [wops-mol-af-db]

TASK [airflow : Copy the primary] **********************************************
skipping: [wops-mol-af-db]

TASK [airflow : Migrate the metadata database] *********************************
Monday 01 June 2026  10:00:01 +0000 (0:00:01.000)       0:00:06.000 **********
fatal: [wops-mol-af-db]: FAILED! => {"changed": true, "cmd": ["airflow", "db", "migrate"], \
"rc": 1, "stderr": "port 1 failed: Connection refused"}

PLAY RECAP *********************************************************************
wops-mol-af-db             : ok=1    changed=0    unreachable=0    failed=1    skipped=1
"""


def test_task_output_is_what_was_printed_under_that_task() -> None:
    skipped = scenario.task_output(_RUN, "Copy the primary")
    assert skipped.startswith("TASK [airflow : Copy the primary]")
    assert "skipping: [wops-mol-af-db]" in skipped and "fatal" not in skipped
    assert scenario.task_output(_RUN, "airflow : Copy the primary") == skipped
    assert scenario.task_output(_RUN, "Point current at the release") == ""
    assert "PLAY RECAP" not in scenario.task_output(_RUN, "Migrate the metadata database")


def test_failures_are_parsed_per_task() -> None:
    assert scenario.failures(_RUN) == [(
        "airflow : Migrate the metadata database", "wops-mol-af-db",
        {"changed": True, "cmd": ["airflow", "db", "migrate"], "rc": 1,
         "stderr": "port 1 failed: Connection refused"})]
    assert scenario.failures(scenario.task_output(_RUN, "Copy the primary")) == []


def test_failed_sections_holds_the_failed_task_only() -> None:
    out = ("\nTASK [a : fine] ****\nok: [h]\n\nTASK [a : broken] ****\n"
           'fatal: [h]: FAILED! => {"msg": "boom"}\n\nPLAY RECAP ****\nh : ok=1 failed=1\n')
    text = scenario.failed_sections(out)
    assert "TASK [a : broken]" in text and "boom" in text
    assert "a : fine" not in text
    # Nothing failed: the end of the output.
    assert scenario.failed_sections("TASK [a : fine] ****\nok: [h]\n", limit=8) == "ok: [h]\n"


def test_a_run_on_the_stock_connection_is_told_from_mitogen() -> None:
    # Lines as Ansible's podman connection prints them at -vvv.
    run = "<db> RUN [b'/usr/bin/podman', b'exec', b'db', b'/bin/sh', b'-c', "
    module = run + "b'/usr/bin/python3 /root/.ansible/tmp/t/AnsiballZ_ping.py && sleep 0']"
    become = (run + "b\"sudo -H -S -n  -u nobody /bin/sh -c 'echo BECOME-SUCCESS-x ; "
              "/usr/bin/python3 /var/tmp/t/AnsiballZ_ping.py' && sleep 0\"]")
    # What a run under mitogen prints of the connection: no module goes through it.
    mitogen = ("<db> RUN [b'/usr/bin/podman', b'mount', b'db']\n"
               + run + "b'echo ~root && sleep 0']\nok: [db] => {}\n")
    assert scenario.ran_on_stock_connection("TASK [x] ***\n" + module + "\nok: [db]\n")
    assert scenario.ran_on_stock_connection("TASK [x] ***\n" + become + "\nok: [db]\n")
    assert not scenario.ran_on_stock_connection("TASK [x] ***\n" + mitogen)
    assert not scenario.ran_on_stock_connection("TASK [x] ***\nok: [h] => {}\n/bin/sh -c python\n")


def test_search_runs_reads_this_molecule_runs_log_and_both_password_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "ansible.log"
    old = ("PLAY [Check the test hosts are booted and reach each other]\n"
           "leaked-1234567\nPLAY RECAP\n")
    this = ("PLAY [Check the test hosts are booted and reach each other]\nPLAY RECAP\nh : ok=1\n"
            "TASK [postgresql : Create roles] ***\nmodule_args: {}\n"
            "PLAY RECAP\ndb : ok=9    changed=3    failed=0\n")
    log.write_text(old + this)
    monkeypatch.setenv("ANSIBLE_LOG_PATH", str(log))
    hits, places = secret_search.search_runs(
        "postgresql", "db", "change has s3cret-value", "back", {"k": "s3cret-value",
                                                                "o": "leaked-1234567"})
    assert [(h.place, h.key) for h in hits] == [
        ("converge -vvv --diff, Ansible's connection (password change)", "k")]
    assert len(places) == 3


def test_a_failed_scenarios_summary_names_each_failed_check_and_task(tmp_path: Path) -> None:
    # bin/test's failure_summary, run on a log shaped as molecule writes one.
    text = (ROOT / "bin/test").read_text()
    function = text[text.index("failure_summary() {"):text.index("\n}\n", text.index(
        "failure_summary() {")) + 3]
    log = tmp_path / "molecule-x.log"
    log.write_text(
        "TASK [airflow : Migrate] ***\n"
        "fatal: [db]: FAILED! => changed=true\n"
        "tests/test_a.py::test_short PASSED [ 50%]\n"
        "=================================== FAILURES ===================================\n"
        "_________________________________ test_short _________________________________\n"
        "E       AssertionError: short failed\n"
        "_ test_a_name_so_long_that_pytest_draws_it_with_a_single_underscore_each_side _\n"
        "E       AssertionError: long failed\n"
        "=========================== short test summary info ============================\n"
        "FAILED tests/test_a.py::test_short - AssertionError: short failed\n"
        "FAILED tests/test_a.py::test_a_name_so_long - AssertionError: long failed\n"
        "========================= 2 failed, 1 passed in 9.00s ==========================\n"
        + "PLAY [Destroy] ***\nok: [localhost]\n" * 100)
    out = subprocess.run(["bash", "-c", function + 'failure_summary x "$1"', "_", str(log)],
                         capture_output=True, text=True, check=True).stdout
    assert "FAILED tests/test_a.py::test_short - AssertionError: short failed" in out
    assert "FAILED tests/test_a.py::test_a_name_so_long - AssertionError: long failed" in out
    assert "2 failed, 1 passed" in out
    assert "_ test_a_name_so_long_that_pytest_draws_it_with_a_single_underscore_each_side _" in out
    assert "E       AssertionError: long failed" in out
    assert "fatal: [db]: FAILED!" in out
    assert "Destroy" not in out


def _stage_runner(tmp_path: Path) -> Path:
    """bin/test's stage scheduling (from its rows to its stage loop), with each
    stage's work replaced by a step that prints its name and its CPU priority."""
    text = (ROOT / "bin/test").read_text()
    rows = text[text.index("declare -a rows=()"):text.index("lint_yaml() {")]
    scheduling = text[text.index("record() {"):text.index("# Each failed scenario's summary")]
    script = tmp_path / "stages.sh"
    script.write_text(
        "set -euo pipefail\nlog() { printf '==> %s\\n' \"$*\"; }\n"
        'read -r -a stages <<<"$STAGES"\nscenarios=()\n' + rows
        + "lint_yaml() { sleep 0.5; echo yaml $(nice); }\n"
        "lint_ansible() { echo ansible-lint $(nice); return 3; }\n"
        "lint_python() { [ -z \"${DIE:-}\" ] || kill -9 $BASHPID; echo ruff $(nice); }\n"
        "unit() { echo unit $(nice); }\n"
        "molecule_lanes() { sleep 1; echo lanes $(nice); wait; checks_report; }\n"
        + scheduling.replace("bash scripts/", "${IMAGES:-true} ")
        + "printf 'row: %s\\n' \"${rows[@]}\"\n")
    return script


LINT_ROWS = ["lint: yamllint", "lint: ansible-lint", "lint: ruff + mypy --strict"]
UNIT_ROW = "unit + ETL tests (pytest)"


@pytest.mark.parametrize(("stages", "beside", "printed", "rows"), [
    # With the molecule stage: lint and unit beside the lanes, niced, rows first.
    ("lint unit molecule", "", ["lanes 0", "yaml 10", "ansible-lint 10", "ruff 10", "unit 10"],
     [*LINT_ROWS, UNIT_ROW]),
    # Without (or turned off): lint beside the unit stage, at the same priority.
    ("lint unit molecule", "0", ["unit 0", "yaml 0", "ansible-lint 0", "ruff 0", "lanes 0"],
     [UNIT_ROW, *LINT_ROWS]),
    ("lint unit", "", ["unit 0", "yaml 0", "ansible-lint 0", "ruff 0"], [UNIT_ROW, *LINT_ROWS]),
    ("lint", "", ["yaml 0", "ansible-lint 0", "ruff 0"], LINT_ROWS),
])
def test_stages_beside_the_lanes_print_in_order_and_keep_their_rows(
        tmp_path: Path, stages: str, beside: str, printed: list[str], rows: list[str]) -> None:
    env = {**os.environ, "STAGES": stages, "WOPS_CHECKS_BESIDE_MOLECULE": beside}
    if not beside:
        env.pop("WOPS_CHECKS_BESIDE_MOLECULE")
    env.pop("WOPS_UNIT_BESIDE_MOLECULE", None)
    out = subprocess.run(["bash", str(_stage_runner(tmp_path))], capture_output=True, text=True,
                         check=True, env=env).stdout
    steps = [line for line in out.splitlines()
             if line.split(" ")[0] in {"yaml", "ansible-lint", "ruff", "unit", "lanes"}]
    # Steps beside the lanes run at niceness 10 (renice sets it); the others
    # at this test's own (the suite may itself run niced, beside the scenarios).
    base = os.nice(0)
    assert steps == [f"{name} {10 if nice == '10' else base}"
                     for name, nice in (line.split(" ") for line in printed)], out
    table = [line.removeprefix("row: ") for line in out.splitlines() if line.startswith("row: ")]
    assert [line.split("  ")[0].strip() for line in table] == rows, out
    # A failed step is a failed row, whichever way it ran; its output follows its banner.
    assert [line for line in table if "FAILED (exit 3)" in line] == [
        next(line for line in table if line.startswith("lint: ansible-lint"))], out
    assert out.index("==> lint: ansible-lint") < out.index("\nansible-lint "), out


def test_a_step_the_background_job_never_finished_is_a_failed_row(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOPS_")}
    out = subprocess.run(["bash", str(_stage_runner(tmp_path))], capture_output=True, text=True,
                         check=True, env={**env, "STAGES": "lint unit molecule", "DIE": "1"}).stdout
    table = [line.removeprefix("row: ") for line in out.splitlines() if line.startswith("row: ")]
    assert [line.split("  ")[0].strip() for line in table] == [*LINT_ROWS, UNIT_ROW], out
    assert [line.endswith("FAILED (exit 99)") for line in table] == [False, False, True, True], out
    assert "lint: ruff + mypy --strict: did not finish" in out


def test_a_failed_image_build_still_reports_the_checks(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOPS_")}
    out = subprocess.run(["bash", str(_stage_runner(tmp_path))], capture_output=True, text=True,
                         check=True, env={**env, "STAGES": "lint unit molecule",
                                          "IMAGES": "false"}).stdout
    table = [line.removeprefix("row: ") for line in out.splitlines() if line.startswith("row: ")]
    assert [line.split("  ")[0].strip() for line in table] == [
        *LINT_ROWS, UNIT_ROW, "molecule: test images and wheelhouse"], out
    assert table[-1].endswith("FAILED (exit 1)"), out
    assert "lanes" not in out
