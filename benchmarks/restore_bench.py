#!/usr/bin/env python3
"""Restore throughput of pgBackRest against a raw copy, and the drill's RTO.

Runs on the hosts of the molecule `dr` scenario (create and converge it
first: `molecule converge -s dr`), all on this machine's disk:

  1. loads the warehouse with the ETL at the given scale factor (from the
     controller, over TLS), unless it already holds that many rows (the
     containers' /dev/shm is raised to 1 GiB first: PostgreSQL's parallel
     queries need more than podman's 64 MiB);
  2. takes a full pgBackRest backup (timed);
  3. on the scratch host: restores that backup into an empty directory
     (`pgbackrest restore`, files only) and, same disk, same run, copies the
     restored directory with `cp -a` (the raw copy); MB/s of both;
  4. runs the DR drill (runbooks/dr_drill.py) and takes its RTO and phases.

    .venv/bin/python benchmarks/restore_bench.py --scale-factor 1

Writes reports/restore-bench-<UTC time>.json and prints a Markdown table.
Targets only the scenario's podman hosts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from testbed import stack_facts

ROOT = Path(__file__).resolve().parents[1]
DB, REPO, SCRATCH = "wops-mol-dr-db", "wops-mol-dr-backup", "wops-mol-dr-scratch"
VAULT_ID = f"dev@{ROOT}/inventory/dev/vault-password.DEV-ONLY.txt"
BENCH_DIR = "/var/lib/postgresql/restore-bench"


def sh(host: str, command: str, check: bool = True) -> str:
    proc = subprocess.run(["podman", "exec", host, "bash", "-c", command],
                          capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{host}: {command}: {proc.stderr.strip()[-1000:]}")
    return proc.stdout.strip()


def timed(host: str, command: str) -> float:
    started = time.monotonic()
    sh(host, command)
    return time.monotonic() - started


def etl_password() -> str:
    out = subprocess.run(["ansible-vault", "view", "--vault-id", VAULT_ID,
                          str(ROOT / "inventory/dev/group_vars/all/vault.yml")],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("vault_postgresql_etl_password:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    raise RuntimeError("vault_postgresql_etl_password not in the dev vault")


def load(scale: float) -> dict[str, Any]:
    wanted = int(6_000_000 * scale * 0.95)
    have = sh(DB, "runuser -u postgres -- psql -XAt -d warehouse -c "
                  "\"SELECT count(*) FROM warehouse.fact_sales\"", check=False)
    if have.isdigit() and int(have) >= wanted:
        return {"loaded": False, "fact_rows": int(have), "seconds": 0.0}
    address = subprocess.run(
        ["podman", "inspect", DB, "--format",
         "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"],
        capture_output=True, text=True, check=True).stdout.strip()
    env = dict(os.environ, ETL_DSN=f"host={address} port=5432 dbname=warehouse user=etl "
                                   "sslmode=require connect_timeout=10",
               PGPASSWORD=etl_password())
    etl = str(ROOT / ".venv/bin/etl")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="restore-bench.") as tmp:
        batch = Path(tmp) / f"sf{scale:g}"
        for args in (["generate", "--scale-factor", str(scale), "--output", str(batch)],
                     ["migrate"], ["load", str(batch), "--no-progress"]):
            proc = subprocess.run([etl, *args], env=env, check=False, capture_output=True,
                                  text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"etl {args[0]} failed ({proc.returncode}): "
                                   f"{proc.stderr.strip()[-1500:]}")
    rows = int(sh(DB, "runuser -u postgres -- psql -XAt -d warehouse -c "
                      "\"SELECT count(*) FROM warehouse.fact_sales\""))
    return {"loaded": True, "fact_rows": rows, "seconds": round(time.monotonic() - started, 1)}


def molecule_inventory() -> str:
    found = sorted(glob.glob(os.path.expanduser(
        "~/.ansible/tmp/molecule.*.dr/inventory/ansible_inventory.yml")))
    if not found:
        raise RuntimeError("no molecule dr inventory: run `molecule converge -s dr` first")
    return found[-1]


def stack(inventory: str) -> dict[str, str]:
    """The stack's facts with the scenario inventory's wops_* variables of the database host."""
    proc = subprocess.run(["ansible-inventory", "-i", inventory, "--host", DB],
                          env=dict(os.environ, ANSIBLE_VAULT_IDENTITY_LIST=VAULT_ID),
                          capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"ansible-inventory -i {inventory} failed: {proc.stderr.strip()}")
    return stack_facts.load(json.loads(proc.stdout))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale-factor", type=float, default=1.0)
    parser.add_argument("--process-max", type=int, default=2)
    parser.add_argument("--skip-drill", action="store_true")
    args = parser.parse_args(argv)
    stanza = stack(molecule_inventory())["wops_pgbackrest_stanza"]

    result: dict[str, Any] = {"scale_factor": args.scale_factor,
                              "process_max": args.process_max,
                              "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    # podman gives containers a 64 MiB /dev/shm: too small for the parallel
    # hash joins of an SF1 load and of the checksums (PostgreSQL's dynamic
    # shared memory lives there). Only the scenario's containers are changed.
    for host in (DB, SCRATCH):
        sh(host, "mount -o remount,size=1g /dev/shm")
    result["load"] = load(args.scale_factor)
    result["database_bytes"] = int(sh(DB, "runuser -u postgres -- psql -XAt -c "
                                          "\"SELECT sum(pg_database_size(oid)) FROM pg_database\""))
    backup_seconds = timed(REPO, f"runuser -u pgbackrest -- pgbackrest --stanza={stanza} "
                                 f"--type=full --process-max={args.process_max} backup")
    info = json.loads(sh(REPO, f"runuser -u pgbackrest -- pgbackrest --stanza={stanza} "
                               "--output=json info"))[0]["backup"][-1]
    result["backup"] = {"label": info["label"], "seconds": round(backup_seconds, 1),
                        "data_bytes": info["info"]["size"],
                        "repository_bytes": info["info"]["repository"]["size"]}

    sh(SCRATCH, f"rm -rf {BENCH_DIR} && mkdir -p {BENCH_DIR}/restore && "
                f"chown -R postgres: {BENCH_DIR} && chmod 700 {BENCH_DIR}/restore && sync")
    restore_seconds = timed(SCRATCH, f"runuser -u postgres -- pgbackrest --stanza={stanza} "
                                     f"--pg1-path={BENCH_DIR}/restore --set={info['label']} "
                                     f"--process-max={args.process_max} --type=immediate "
                                     "restore && sync")
    restored = int(sh(SCRATCH, f"du -sb {BENCH_DIR}/restore | cut -f1"))
    copy_seconds = timed(SCRATCH, f"cp -a {BENCH_DIR}/restore {BENCH_DIR}/copy && sync")
    copied = int(sh(SCRATCH, f"du -sb {BENCH_DIR}/copy | cut -f1"))
    sh(SCRATCH, f"rm -rf {BENCH_DIR}")
    mb = 1024 * 1024
    result["restore"] = {"bytes": restored, "seconds": round(restore_seconds, 2),
                         "mb_per_s": round(restored / mb / restore_seconds, 1)}
    result["raw_copy"] = {"bytes": copied, "seconds": round(copy_seconds, 2),
                          "mb_per_s": round(copied / mb / copy_seconds, 1)}
    result["restore_vs_copy"] = round(result["restore"]["mb_per_s"]
                                      / result["raw_copy"]["mb_per_s"], 2)

    if not args.skip_drill:
        with tempfile.TemporaryDirectory(prefix="restore-bench-drill.") as reports:
            env = dict(os.environ, ANSIBLE_LIBRARY=str(ROOT / "plugins/modules"),
                       ANSIBLE_MODULE_UTILS=str(ROOT / "plugins/module_utils"),
                       ANSIBLE_VAULT_IDENTITY_LIST=VAULT_ID)
            proc = subprocess.run(
                [sys.executable, str(ROOT / "runbooks/dr_drill.py"), "-i", molecule_inventory(),
                 "--report-dir", reports, "--quiet"],
                env=env, capture_output=True, text=True, check=False, cwd=ROOT)
            found = sorted(Path(reports).glob("dr-drill-*.json"))
            report = json.loads(found[-1].read_text()) if found else {}
            result["drill"] = {"exit_code": proc.returncode, "status": report.get("status"),
                               "rto_seconds": report.get("rto_seconds"),
                               "rpo_seconds": report.get("rpo_seconds"),
                               "phases": {p["name"]: p["seconds"]
                                          for p in report.get("phases", [])}}

    out = ROOT / "reports" / f"restore-bench-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    r, c = result["restore"], result["raw_copy"]
    sys.stdout.write(
        f"| SF | data MiB | restore s | restore MB/s | cp -a s | cp -a MB/s | ratio | RTO s |\n"
        f"|---|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {args.scale_factor:g} | {r['bytes'] / mb:.0f} | {r['seconds']} | {r['mb_per_s']} "
        f"| {c['seconds']} | {c['mb_per_s']} | {result['restore_vs_copy']} "
        f"| {result.get('drill', {}).get('rto_seconds', '-')} |\n{out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
