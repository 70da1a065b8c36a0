#!/usr/bin/env python3
"""pgBouncer benchmark: pgbench direct vs through pgBouncer, in one run.

Runs pgbench inside a test host that has PostgreSQL and pgBouncer (the
postgresql molecule scenario's wops-mol-pg-primary, or the dev stack's
wops-dev-db1 with a 'bench' database), so every connection stays on that host:

    benchmarks/pgbouncer_bench.py --host wops-mol-pg-primary [--seconds 30] [--clients 50]

Prints, for the select-only (-S) and the TPC-B-like default workloads, the tps
straight to PostgreSQL and through pgBouncer and their ratio; then holds 1000
concurrent clients through pgBouncer for 60 s and reports failures. Passwords
come from the dev vault; nothing is printed of them.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from testbed import stack_facts

ROOT = Path(__file__).resolve().parents[1]


def _secrets() -> dict[str, str]:
    out = subprocess.run(
        ["ansible-vault", "view", "--vault-id",
         f"dev@{ROOT}/inventory/dev/vault-password.DEV-ONLY.txt",
         str(ROOT / "inventory/dev/group_vars/all/vault.yml")],
        capture_output=True, text=True, check=True).stdout
    data: dict[str, str] = yaml.safe_load(out)
    return data


def _pgbench(bindir: str, host: str, password: str, conninfo: str, *args: str) -> str:
    proc = subprocess.run(
        ["podman", "exec", "-e", f"PGPASSWORD={password}", host, f"{bindir}/pgbench", *args,
         conninfo],
        capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"pgbench {' '.join(args)} failed:\n{out[-1500:]}")
    return out


def _tps(out: str) -> float:
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if not match:
        raise SystemExit(f"no tps in pgbench output:\n{out[-1500:]}")
    return float(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="wops-mol-pg-primary")
    parser.add_argument("--database", default="bench")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--hold-clients", type=int, default=1000)
    parser.add_argument("--hold-seconds", type=int, default=60)
    parser.add_argument("--pg-bindir", default=stack_facts.load()["wops_postgresql_bin_dir"],
                        help="PostgreSQL's binaries on the host (default: the stack's, "
                        "wops_postgresql_bin_dir)")
    args = parser.parse_args()
    password = _secrets()["vault_postgresql_etl_password"]
    direct = f"host={args.host} port=5432 dbname={args.database} user=etl sslmode=require"
    pooled = f"host=127.0.0.1 port=6432 dbname={args.database} user=etl sslmode=require"

    _pgbench(args.pg_bindir, args.host, password, direct, "-q", "-i", "-s", str(args.scale))
    common = ["-n", "-c", str(args.clients), "-j", "2", "-T", str(args.seconds)]
    print(f"pgbench, {args.clients} clients, {args.seconds} s each, scale {args.scale}, "
          f"on {args.host} (TLS both ways)")
    print(f"{'workload':<14} {'direct tps':>12} {'pgbouncer tps':>14} {'ratio':>7}")
    for name, extra in (("select-only", ["-S"]), ("tpc-b-like", [])):
        d = _tps(_pgbench(args.pg_bindir, args.host, password, direct, *common, *extra))
        p = _tps(_pgbench(args.pg_bindir, args.host, password, pooled, *common, *extra))
        print(f"{name:<14} {d:>12.0f} {p:>14.0f} {p / d:>7.2f}")

    out = _pgbench(args.pg_bindir, args.host, password, pooled, "-n", "-S",
                   "-c", str(args.hold_clients), "-j", "4", "-T", str(args.hold_seconds))
    failed = re.search(r"number of failed transactions: (\d+)", out)
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    aborted = "aborted" in out
    ok = bool(failed and failed.group(1) == "0" and not aborted)
    print(f"{args.hold_clients} clients through pgBouncer for {args.hold_seconds} s: "
          f"{processed.group(1) if processed else '?'} transactions, "
          f"{failed.group(1) if failed else '?'} failed, "
          f"aborted clients: {'yes' if aborted else 'none'}, tps {_tps(out):.0f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
