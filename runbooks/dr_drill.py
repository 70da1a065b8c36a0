#!/usr/bin/env python3
"""Run the DR drill (playbooks/dr_drill.yml), time it, report it, push its metrics.

    runbooks/dr_drill.py -i inventory/staging --vault-id staging@scripts/vault-password-client.py
    runbooks/dr_drill.py -i inventory/dev --pushgateway http://127.0.0.1:19091

Writes reports/dr-drill-<UTC timestamp>.json and .md (phases as a table),
pushes success, RTO, RPO and data-verified gauges to a Pushgateway when one
is given (--pushgateway or WOPS_PUSHGATEWAY_URL), and exits:

    0  data verified, RTO and RPO within the targets
    1  the drill failed, or the restored data or the repository did not verify
    2  usage error
    3  data verified, but RTO or RPO over its target
    4  the drill passed but its metrics could not be pushed
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import ansible_runner

sys.path.insert(0, str(Path(__file__).resolve().parent))
import drill_report as dr

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = ROOT / "playbooks" / "dr_drill.yml"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dr_drill.py", description=__doc__.split("\n\n")[0]
                                if __doc__ else None)
    p.add_argument("-i", "--inventory", required=True, help="inventory/<env> or a file")
    p.add_argument("-e", "--extra-vars", action="append", default=[], metavar="K=V|@FILE",
                   help="passed to ansible-playbook (dr_drill_host=..., dr_drill_keep=true)")
    p.add_argument("--vault-id", action="append", default=[],
                   help="passed to ansible-playbook (staging and production vaults)")
    p.add_argument("--report-dir", type=Path, default=ROOT / "reports")
    p.add_argument("--pushgateway", default=os.environ.get("WOPS_PUSHGATEWAY_URL", ""),
                   help="Pushgateway URL (default: WOPS_PUSHGATEWAY_URL; none: no push)")
    p.add_argument("--rto-target", type=float, help="seconds; overrides the inventory's")
    p.add_argument("--rpo-target", type=float, help="seconds; overrides the inventory's")
    p.add_argument("--playbook", type=Path, default=PLAYBOOK, help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="do not stream the playbook's output")
    return p


def _cmdline(args: argparse.Namespace) -> str:
    parts: list[str] = []
    for value in args.extra_vars:
        parts += ["-e", value]
    for value in args.vault_id:
        parts += ["--vault-id", value]
    # ansible-runner splits cmdline with shlex.
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    inventory = Path(args.inventory).resolve()
    if not inventory.exists():
        sys.stderr.write(f"dr_drill.py: inventory {args.inventory} not found\n")
        return dr.EXIT_USAGE
    collector = dr.Collector()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    # Keep the variables of the run the caller's: the drill playbook's extra
    # vars are the ones on the command line, in the process environment the
    # caller's Ansible settings (ANSIBLE_CONFIG etc.) stay in force.
    env: dict[str, Any] = {"ANSIBLE_NOCOLOR": "1"}
    if "ANSIBLE_CONFIG" not in os.environ:
        env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    with tempfile.TemporaryDirectory(prefix="dr-drill-runner.") as private:
        outcome = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(ROOT),
            playbook=str(Path(args.playbook).resolve()),
            inventory=str(inventory),
            cmdline=_cmdline(args) or None,
            envvars=env,
            event_handler=collector,
            quiet=args.quiet,
            suppress_env_files=True,
        )
        rc = int(outcome.rc if outcome.rc is not None else 1)
    result = collector.artifact.get("dr_drill")
    verdict = dr.judge(rc, result, collector.failures, args.rto_target, args.rpo_target)
    report = dr.build_report(collector, verdict, rc, str(args.inventory))
    json_path, md_path = dr.write_report(report, Path(args.report_dir), stamp)
    sys.stdout.write(f"\nDR drill {verdict.status}: RTO {dr._fmt(verdict.rto_seconds)} s, "
                     f"RPO {dr._fmt(verdict.rpo_seconds)} s; report {json_path} and {md_path}\n")
    for reason in verdict.reasons:
        sys.stdout.write(f"  - {reason}\n")
    exit_code = verdict.exit_code
    if args.pushgateway:
        try:
            dr.push_metrics(args.pushgateway, report)
        except OSError as exc:
            sys.stderr.write(f"dr_drill.py: could not push metrics to {args.pushgateway}: {exc}\n")
            if exit_code == dr.EXIT_OK:
                exit_code = dr.EXIT_PUSH_FAILED
    return exit_code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
