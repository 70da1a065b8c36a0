"""The scheduled DR drill on the repository host (roles/dr_ops, step timer).

The converge's backup tier with the timer turned on installs and starts
wops-dr-drill.timer on the repository host only, with the schedule and
command the inventory gives; a second run changes nothing; turned off again,
the timer is stopped and its units removed. (The drill the timer runs is
tested in test_dr.py through runbooks/dr_drill.py.)
"""

from __future__ import annotations

import json
import re
from typing import Any

from testbed import scenario

DB = "wops-mol-dr-db"
REPO = "wops-mol-dr-backup"
SCHEDULE = "Mon *-*-* 03:00:00"
UNITS = ("/etc/systemd/system/wops-dr-drill.timer", "/etc/systemd/system/wops-dr-drill.service")


def _converge(*extra: str) -> Any:
    return scenario.playbook("converge.yml", "--tags", "dr_ops", *extra)


def _changed(output: str, host: str) -> int:
    match = re.search(rf"^{re.escape(host)}\s+: ok=\d+\s+changed=(\d+)", output, re.M)
    assert match, output[-3000:]
    return int(match.group(1))


def test_the_timer_is_installed_on_the_repository_host_then_removed(
        hosts: dict[str, Any]) -> None:
    repo, db = hosts[REPO], hosts[DB]
    on = json.dumps({"dr_ops_timer_enabled": True, "dr_ops_timer_schedule": SCHEDULE})
    first = _converge("-e", on)
    assert first.returncode == 0, scenario.failed_sections(first.stdout)
    assert _changed(first.stdout, REPO) > 0
    assert repo.run("systemctl is-enabled wops-dr-drill.timer").stdout.strip() == "enabled"
    assert repo.run("systemctl is-active wops-dr-drill.timer").stdout.strip() == "active"
    # systemd read the schedule and knows when the drill runs next.
    timer = repo.check_output("systemctl cat wops-dr-drill.timer")
    assert f"OnCalendar={SCHEDULE}" in timer, timer
    next_run = repo.check_output(
        "systemctl show -p NextElapseUSecRealtime --value wops-dr-drill.timer")
    assert next_run.strip() and next_run.strip() != "n/a", next_run
    service = repo.check_output("systemctl cat wops-dr-drill.service")
    assert ("ExecStart=/opt/warehouse-ops/.venv/bin/python /opt/warehouse-ops/runbooks/dr_drill.py"
            " --inventory /opt/warehouse-ops/inventory/dev") in service, service
    assert "User=root" in service
    # Only the repository host runs the drill.
    assert not any(db.file(unit).exists for unit in UNITS)

    again = _converge("-e", on)
    assert again.returncode == 0, scenario.failed_sections(again.stdout)
    assert _changed(again.stdout, REPO) == 0, again.stdout[-3000:]

    off = _converge()
    assert off.returncode == 0, scenario.failed_sections(off.stdout)
    assert not any(repo.file(unit).exists for unit in UNITS)
    assert repo.run("systemctl is-active wops-dr-drill.timer").stdout.strip() != "active"
    assert "wops-dr-drill" not in repo.check_output("systemctl list-timers --all --no-legend")
