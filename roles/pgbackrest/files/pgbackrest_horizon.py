#!/usr/bin/python3
# Copyright: warehouse-ops contributors
# Apache License 2.0
"""How far can the repository restore? Answer before a restore touches a host.

pgBackRest reports backups and the range of archived WAL segments, but not
what a recovery target needs: a backup that ended before the target, and
archived WAL that reaches past it. PostgreSQL finds out only at the end of a
restore ("recovery ended before configured recovery target was reached"),
after the target host's data directory has been replaced. This tool reads
the repository (pgBackRest info, repo-ls, repo-get) and decodes the newest
archived WAL with pg_waldump, then says whether the target is reachable,
which backup set to restore, and why not otherwise.

Prints one JSON object; exit status 0 when reachable, 3 when not, 2 on usage
errors, 1 when the repository cannot be read. Standard library only: it runs
on the repository host with the system Python.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

SEGMENT_RE = re.compile(r"^([0-9A-F]{24})(?:-[0-9a-f]{40})?(\.gz|\.zst|\.lz4|\.bz2)?$")
# pg_waldump: "... lsn: 0/05000238, prev ..., desc: COMMIT 2026-11-26 03:07:05.080121 UTC"
COMMIT_RE = re.compile(
    r"lsn: ([0-9A-F]+/[0-9A-F]+),.*desc: (?:COMMIT|ABORT|COMMIT_PREPARED|ABORT_PREPARED) "
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (UTC|[+-]\d\d(?::?\d\d)?)"
)
RESTORE_POINT_RE = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+),.*desc: RESTORE_POINT (.*)$")
LSN_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
DECOMPRESS = {".gz": ["gzip", "-dc"], ".zst": ["zstd", "-dcq"], ".lz4": ["lz4", "-dcq"],
              ".bz2": ["bzip2", "-dc"], "": ["cat"]}
TARGET_TYPES = ("latest", "immediate", "time", "name", "lsn")
# Debian's layout of PostgreSQL's binaries, one directory per major version.
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"


class HorizonError(RuntimeError):
    """The repository could not be read (as opposed to: the target is out of reach)."""


@dataclass
class Backup:
    label: str
    type: str
    start: float
    stop: float
    lsn_start: int
    lsn_stop: int
    size: int
    repo_size: int
    error: bool = False


@dataclass
class Verdict:
    reachable: bool
    reason: str
    target_type: str
    target: str
    set: str = ""
    backups: list[dict[str, Any]] = field(default_factory=list)
    archive_min: str = ""
    archive_max: str = ""
    wal_end_lsn: str = ""
    last_commit_time: str = ""
    last_commit_lsn: str = ""
    restore_point_lsn: str = ""
    scanned_segments: int = 0


def parse_lsn(text: str) -> int:
    """'16/B374D848' -> integer position."""
    match = LSN_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an LSN (like 0/5000028)")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:08X}"


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 timestamp with its zone; a naive one is refused (ambiguous)."""
    value = text.strip().replace(" UTC", "+00:00").replace("Z", "+00:00")
    if re.search(r"[+-]\d\d$", value):
        value += ":00"
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add one (e.g. +00:00)")
    return parsed


def segment_end_lsn(segment: str, segment_size: int) -> int:
    """First LSN after a WAL segment (TTTTTTTTLLLLLLLLSSSSSSSS)."""
    log, seg = int(segment[8:16], 16), int(segment[16:24], 16)
    per_log = 0x100000000 // segment_size
    return log * 0x100000000 + (seg + 1) * segment_size if seg < per_log else 0


def parse_backups(info: list[dict[str, Any]]) -> list[Backup]:
    """Backups of the stanza, oldest first, from `pgbackrest info --output=json`."""
    if not info:
        raise HorizonError("pgbackrest info returned no stanza")
    backups = []
    for b in info[0].get("backup", []):
        backups.append(Backup(
            label=b["label"], type=b["type"],
            start=float(b["timestamp"]["start"]), stop=float(b["timestamp"]["stop"]),
            lsn_start=parse_lsn(b["lsn"]["start"]), lsn_stop=parse_lsn(b["lsn"]["stop"]),
            size=int(b["info"]["size"]), repo_size=int(b["info"]["repository"]["size"]),
            error=bool(b.get("error", False)),
        ))
    return sorted(backups, key=lambda b: b.stop)


def last_commit(waldump_output: str) -> tuple[dt.datetime, str] | None:
    """Newest commit/abort record (time, LSN) in pg_waldump output."""
    best: tuple[dt.datetime, str] | None = None
    for match in COMMIT_RE.finditer(waldump_output):
        when = parse_time(f"{match.group(2)} {match.group(3)}")
        if best is None or when >= best[0]:
            best = (when, match.group(1))
    return best


def restore_points(waldump_output: str) -> dict[str, str]:
    """Named restore points (name -> LSN) in pg_waldump output; the last one wins."""
    found: dict[str, str] = {}
    for line in waldump_output.splitlines():
        match = RESTORE_POINT_RE.search(line)
        if match:
            found[match.group(2).strip()] = match.group(1)
    return found


def choose_set(backups: list[Backup], target_type: str, time_target: dt.datetime | None = None,
               lsn_target: int | None = None) -> Backup | None:
    """The newest usable backup that ended before the target (None: no such backup)."""
    usable = [b for b in backups if not b.error]
    if target_type == "time" and time_target is not None:
        # Backup stop times are whole seconds: keep a second clear of the target.
        usable = [b for b in usable if b.stop + 1 <= time_target.timestamp()]
    elif lsn_target is not None:
        usable = [b for b in usable if b.lsn_stop <= lsn_target]
    return usable[-1] if usable else None


def _check_time(backups: list[Backup], target: str,
                last: tuple[dt.datetime, str] | None) -> tuple[Backup | None, str]:
    when = parse_time(target)
    chosen = choose_set(backups, "time", time_target=when)
    if chosen is None:
        first = min(b.stop for b in backups)
        return None, (f"target {target} is before the oldest backup ended "
                      f"({dt.datetime.fromtimestamp(first, dt.UTC).isoformat()})")
    if last is None or last[0] <= when:
        seen = last[0].isoformat() if last else "none found"
        return None, (f"target {target} is beyond the archived WAL: the newest archived "
                      f"commit is {seen}; recovery would end before the target")
    return chosen, ""


def _check_lsn(backups: list[Backup], target: str,
               wal_end: int | None) -> tuple[Backup | None, str]:
    wanted = parse_lsn(target)
    chosen = choose_set(backups, "lsn", lsn_target=wanted)
    if chosen is None:
        return None, f"target LSN {target} is before the end of the oldest backup"
    if wal_end is None or wanted > wal_end:
        end = format_lsn(wal_end) if wal_end is not None else "nothing archived"
        return None, f"target LSN {target} is beyond the archived WAL (archived up to {end})"
    return chosen, ""


def _check_name(backups: list[Backup], target: str,
                point_lsn: str | None) -> tuple[Backup | None, str]:
    if not point_lsn:
        return None, f"no restore point named {target!r} in the archived WAL"
    chosen = choose_set(backups, "lsn", lsn_target=parse_lsn(point_lsn))
    if chosen is None:
        return None, (f"restore point {target!r} at {point_lsn} is before the end of "
                      "the oldest backup")
    return chosen, ""


def decide(backups: list[Backup], target_type: str, target: str, *,
           last: tuple[dt.datetime, str] | None, wal_end: int | None,
           point_lsn: str | None) -> Verdict:
    """Whether the archive reaches the target, from what was read (pure)."""
    verdict = Verdict(False, "", target_type, target,
                      backups=[asdict(b) for b in backups])
    if last is not None:
        verdict.last_commit_time = last[0].astimezone(dt.UTC).isoformat(timespec="microseconds")
        verdict.last_commit_lsn = last[1]
    if wal_end is not None:
        verdict.wal_end_lsn = format_lsn(wal_end)
    if target_type == "name" and point_lsn:
        verdict.restore_point_lsn = point_lsn
    if not [b for b in backups if not b.error]:
        verdict.reason = "the repository holds no usable backup"
        return verdict
    chosen: Backup | None
    if target_type in ("latest", "immediate"):
        chosen, reason = choose_set(backups, target_type), ""
    elif target_type == "time":
        chosen, reason = _check_time(backups, target, last)
    elif target_type == "lsn":
        chosen, reason = _check_lsn(backups, target, wal_end)
    elif target_type == "name":
        chosen, reason = _check_name(backups, target, point_lsn)
    else:
        raise ValueError(f"unknown target type {target_type!r}")
    if chosen is None:
        verdict.reason = reason
        return verdict
    verdict.reachable = True
    verdict.set = chosen.label
    verdict.reason = f"backup {chosen.label} and the archived WAL reach the target"
    return verdict


class Repository:
    """The stanza's repository, read through the pgbackrest command."""

    def __init__(self, stanza: str, config: str | None, bindir: str, segment_size: int) -> None:
        self.stanza = stanza
        self.base = ["pgbackrest", f"--stanza={stanza}", "--log-level-console=error"]
        if config:
            self.base.append(f"--config={config}")
        self.bindir = bindir
        self.segment_size = segment_size

    def _run(self, *args: str, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[Any]:
        proc = subprocess.run([*self.base, *args], stdout=stdout, stderr=subprocess.PIPE,
                              check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise HorizonError(f"pgbackrest {args[0]} failed ({proc.returncode}): {err[-500:]}")
        return proc

    def info(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = json.loads(self._run("--output=json", "info").stdout)
        return data

    def segments(self, archive_id: str) -> list[tuple[str, str]]:
        """(segment, repository path) of every archived segment, oldest first."""
        root = f"archive/{self.stanza}/{archive_id}"
        found = []
        for directory in self._run("repo-ls", root).stdout.decode().split():
            if not re.fullmatch(r"[0-9A-F]{16}", directory):
                continue
            for name in self._run("repo-ls", f"{root}/{directory}").stdout.decode().split():
                match = SEGMENT_RE.match(name)
                if match:
                    found.append((match.group(1), f"{root}/{directory}/{name}"))
        return sorted(found)

    def waldump(self, segment: str, path: str, rmgrs: list[str]) -> str:
        """pg_waldump of one archived segment (decrypted and decompressed to a temp dir)."""
        suffix = next((s for s in DECOMPRESS if s and path.endswith(s)), "")
        with tempfile.TemporaryDirectory(prefix="pgbackrest-horizon.") as tmp:
            packed, plain = os.path.join(tmp, "packed"), os.path.join(tmp, segment)
            with open(packed, "wb") as out:
                self._run("repo-get", path, stdout=out)
            with open(packed, "rb") as src, open(plain, "wb") as out:
                subprocess.run(DECOMPRESS[suffix], stdin=src, stdout=out, check=True)
            args = [os.path.join(self.bindir, "pg_waldump")]
            for rmgr in rmgrs:
                args.append(f"--rmgr={rmgr}")
            # pg_waldump exits 1 at the end of the segment's valid records; the
            # records it printed are still right.
            proc = subprocess.run([*args, plain], capture_output=True, text=True, check=False,
                                  env={**os.environ, "TZ": "UTC"})
            return proc.stdout


def _major(bindir: str) -> tuple[int, ...]:
    """The version of a /usr/lib/postgresql/<version>/bin directory, for sorting."""
    name = os.path.basename(os.path.dirname(bindir))
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (-1,)


def newest_bindir() -> str | None:
    """The newest Debian PostgreSQL binaries directory with pg_waldump, if any."""
    found = [d for d in glob.glob(DEBIAN_BINDIRS) if os.path.exists(os.path.join(d, "pg_waldump"))]
    return max(found, key=_major, default=None)


def horizon(repo: Repository, target_type: str, target: str, max_segments: int) -> Verdict:
    info = repo.info()
    backups = parse_backups(info)
    archives = info[0].get("archive", [])
    if not archives or not archives[-1].get("max"):
        return decide(backups, target_type, target, last=None, wal_end=None, point_lsn=None)
    archive = archives[-1]
    segments = repo.segments(archive["id"])
    # The newest timeline's segments; its history goes back through its parents.
    timeline = max((s[0][:8] for s in segments), default="")
    mine = [s for s in segments if s[0][:8] == timeline]
    wal_end = segment_end_lsn(mine[-1][0], repo.segment_size) if mine else None
    last: tuple[dt.datetime, str] | None = None
    point: str | None = None
    scanned = 0
    oldest_needed = min((format_lsn(b.lsn_start) for b in backups), default="0/0")
    for segment, path in reversed(mine):
        if scanned >= max_segments:
            break
        scanned += 1
        need_point = target_type == "name" and point is None
        out = repo.waldump(segment, path, ["Transaction", "XLOG"] if need_point
                           else ["Transaction"])
        if last is None:
            last = last_commit(out)
        if need_point:
            point = restore_points(out).get(target)
        if last is not None and not (target_type == "name" and point is None):
            break
        if segment_end_lsn(segment, repo.segment_size) <= parse_lsn(oldest_needed):
            break
    verdict = decide(backups, target_type, target, last=last, wal_end=wal_end, point_lsn=point)
    verdict.archive_min, verdict.archive_max = archive.get("min", ""), archive.get("max", "")
    verdict.scanned_segments = scanned
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--stanza", required=True)
    parser.add_argument("--target-type", choices=TARGET_TYPES, default="latest")
    parser.add_argument("--target", default="", help="timestamp with zone, restore point, LSN")
    parser.add_argument("--config", help="pgBackRest configuration file")
    parser.add_argument("--pg-bindir",
                        help="PostgreSQL binaries (pg_waldump) of the stanza's major version; "
                        "default: the newest /usr/lib/postgresql/<version>/bin on this host")
    parser.add_argument("--wal-segment-size", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--max-segments", type=int, default=512,
                        help="newest archived segments decoded at most (16 MiB each)")
    args = parser.parse_args(argv)
    if args.target_type in ("time", "name", "lsn") and not args.target:
        parser.error(f"--target-type {args.target_type} needs --target")
    try:
        if args.target_type == "time":
            parse_time(args.target)
        elif args.target_type == "lsn":
            parse_lsn(args.target)
    except ValueError as exc:
        parser.error(str(exc))
    bindir = args.pg_bindir or newest_bindir()
    if bindir is None:
        parser.error(f"no pg_waldump in {DEBIAN_BINDIRS}: install the PostgreSQL server "
                     "package or pass --pg-bindir")
    repo = Repository(args.stanza, args.config, bindir, args.wal_segment_size)
    try:
        verdict = horizon(repo, args.target_type, args.target, args.max_segments)
    except (HorizonError, OSError, subprocess.CalledProcessError, KeyError, ValueError) as exc:
        sys.stdout.write(json.dumps({"reachable": False, "error": str(exc)}) + "\n")
        return 1
    sys.stdout.write(json.dumps(asdict(verdict), default=str) + "\n")
    return 0 if verdict.reachable else 3


if __name__ == "__main__":
    sys.exit(main())
