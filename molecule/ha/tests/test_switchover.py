"""A planned switchover under pgbench: no transaction fails.

pgbench (four clients, one INSERT per transaction into ha_load) runs through
the pgBouncer of the member that neither leads nor takes the lead, while
playbooks/switchover.yml moves the lead to a named replica: every pgBouncer
paused, patronictl switchover, HAProxy routing to the new leader, every
pgBouncer resumed. pgbench's report must show no failed transaction and no
aborted client, and every row it committed must be on the new leader.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

from testbed import ha_load, patroni, scenario
from testbed.pg_host import sql

MEMBERS = ["wops-mol-ha-1", "wops-mol-ha-2", "wops-mol-ha-3"]
PGBOUNCER_PORT = 6432
ROOT = Path(__file__).resolve().parents[3]
SCRIPT = f"INSERT INTO {ha_load.TABLE} (load, client) VALUES ('switchover', :client_id);\n"


def test_a_planned_switchover_under_pgbench_fails_no_transaction(
        hosts: dict[str, Any], secrets: dict[str, str], stack: dict[str, str]) -> None:
    members = {name: hosts[name] for name in MEMBERS}
    leader, _ = patroni.wait_for_leader(members, timeout=120)
    patroni.wait_for_members(members, leader, replicas=2, timeout=240)
    candidate, client = sorted(n for n in members if n != leader)
    sql(members[leader], ha_load.CREATE)
    ha_load.write_pgpass(client, PGBOUNCER_PORT, secrets["vault_postgresql_etl_password"])
    subprocess.run(["podman", "exec", "-i", client, "sh", "-c", "cat > /root/switchover.sql"],
                   input=SCRIPT, text=True, check=True)
    conninfo = (f"host=127.0.0.1 port={PGBOUNCER_PORT} dbname=warehouse user=etl "
                "sslmode=verify-full sslrootcert=/etc/pgbouncer/tls/ca.crt")
    pgbench = f"{stack['wops_postgresql_bin_dir']}/pgbench"
    subprocess.run(["podman", "exec", "-d", client, "sh", "-c",
                    f"{pgbench} -n -T 40 -c 4 -j 2 -f /root/switchover.sql '{conninfo}' "
                    "> /root/pgbench.out 2>&1; echo $? > /root/pgbench.rc"], check=True)
    time.sleep(8)
    started = time.monotonic()
    run = scenario.playbook(str(ROOT / "playbooks/switchover.yml"),
                            "-e", f"switchover_candidate={candidate}")
    took = time.monotonic() - started
    assert run.returncode == 0, scenario.failed_sections(run.stdout) or run.stdout[-4000:]

    def finished() -> bool:
        return bool(members[client].run("test -s /root/pgbench.rc").rc == 0)

    patroni.wait_until(finished, timeout=90, what="pgbench to end")
    report = members[client].check_output("cat /root/pgbench.out")
    rc = members[client].check_output("cat /root/pgbench.rc").strip()
    assert patroni.wait_for_leader(members, timeout=30)[0] == candidate
    assert rc == "0", report
    done = re.search(r"number of transactions actually processed: (\d+)", report)
    failed = re.search(r"number of failed transactions: (\d+)", report)
    assert done is not None, report
    processed = int(done[1])
    assert "aborted" not in report, report
    assert failed is not None and failed[1] == "0", report
    stored = int(sql(members[candidate],
                     f"SELECT count(*) FROM {ha_load.TABLE} WHERE load = 'switchover'"))
    assert stored >= processed > 0, (stored, processed)
    latency = re.search(r"latency average = ([0-9.]+ ms)", report)
    patroni.report(f"switchover {leader} -> {candidate} under pgbench (4 clients through the "
                   f"pgBouncer of {client}): playbook {took:.0f} s, {processed} transactions, "
                   f"failed {failed[1]}, latency average {latency[1] if latency else '?'}")
    # The old leader follows the new one.
    patroni.wait_for_members(members, candidate, replicas=2, timeout=240)
    assert patroni.in_recovery(members[leader]) is True
