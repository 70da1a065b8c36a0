"""Search the places a secret must never be, on podman test hosts.

Given the secret values a scenario converged with, report every place one of
them shows up: Ansible's output, the hosts' logs (/var/log and the journal),
the process arguments seen while a play ran, and files that a user other
than their owner may read. A hit names the place and the secret's key, never
its value.

The values reach a host only as files copied in with ``podman cp`` (mode
0600, removed afterwards): no value is ever on a command line.

    sampler = ProcessSampler(names)      # ps inside each host, every 0.2 s
    with sampler:
        out = run_the_play()
    hits = search_text("ansible output", out, values)
    hits += sampler.hits(values)
    hits += search_hosts(names, values, allowed_groups={"postgres"})
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

# Where a host's own configuration, state and logs live: files here that are
# readable by others than their owner must hold no secret. (/usr holds the
# installed software, readable by everyone and written by no role.)
READABLE_ROOTS = ("/etc", "/var", "/srv", "/opt", "/home", "/root", "/run", "/tmp")  # noqa: S108
_WORK = "/root/.wops-secret-search"
# Shorter values would match by chance.
MIN_LENGTH = 8
# Written before each process snapshot.
SAMPLE_MARK = "--wops-sample--"
# The first play of molecule's prepare step (molecule/_shared/prepare.yml):
# a molecule run's part of the scenario's Ansible log starts at its last one.
PREPARE_PLAY = "PLAY [Check the test hosts are booted and reach each other]"


@dataclass(frozen=True)
class Hit:
    """A secret (by key) found in a place."""

    place: str
    key: str

    def __str__(self) -> str:
        return f"{self.key} in {self.place}"


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check)


def secret_values(secrets: Mapping[str, object]) -> dict[str, str]:
    """The string values worth searching for, by key (too short ones would match anywhere)."""
    out = {}
    for key, value in secrets.items():
        if isinstance(value, str) and len(value) >= MIN_LENGTH:
            out[key] = value
    return out


def scenario_log(role: str, host: str) -> str:
    """This molecule run's Ansible log (ANSIBLE_LOG_PATH), checked to hold its converge.

    The scenario's molecule.yml runs molecule's own plays at -vvv --diff into
    that log. The first run after the prepare step that has tasks of ``role``
    must have changed ``host`` (it created what the role manages) and have
    been written at -vvv (each module's arguments shown).
    """
    path = Path(os.environ["ANSIBLE_LOG_PATH"])
    text = path.read_text(errors="replace")
    assert PREPARE_PLAY in text, f"{path}: no prepare step in it"
    text = text[text.rindex(PREPARE_PLAY):]
    runs = text.split("PLAY RECAP")
    first = next((i for i, run in enumerate(runs) if f"TASK [{role} : " in run), None)
    assert first is not None and first + 1 < len(runs), f"{path}: no converge of {role} in it"
    assert re.search(rf"{re.escape(host)}\s+: ok=\d+\s+changed=[1-9]", runs[first + 1]), \
        f"{path}: its converge changed nothing on {host}"
    assert "module_args" in runs[first], f"{path}: not written at -vvv"
    return text


def search_runs(role: str, host: str, change: str, back: str,
                values: Mapping[str, str]) -> tuple[list[Hit], list[str]]:
    """Hits in Ansible's output: this molecule run's log (scenario_log) and a
    password change's two runs (the change on Ansible's own connection, and
    the run that puts the secret back); and the places searched."""
    runs = {"Ansible log (converge, idempotence, checks; -vvv --diff)": scenario_log(role, host),
            "converge -vvv --diff, Ansible's connection (password change)": change,
            "converge -vvv --diff (password back)": back}
    hits = [hit for place, out in runs.items() for hit in search_text(place, out, values)]
    return hits, list(runs)


def search_text(place: str, text: str, values: Mapping[str, str]) -> list[Hit]:
    """Hits of the values in a text the test holds (Ansible's output, say)."""
    return [Hit(place, key) for key, value in sorted(values.items()) if value in text]


class _PatternFiles:
    """One pattern file per key, copied into a host under /root (0600)."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="wops-secret-search-")
        root = Path(self._dir.name)
        os.chmod(root, 0o700)
        # Files are named k0, k1, ...: a key may hold any character.
        self.keys = {f"k{i}": key for i, key in enumerate(sorted(values))}
        for name, key in self.keys.items():
            path = root / name
            path.write_text(values[key] + "\n")
            os.chmod(path, 0o600)
        self.local = root

    def install(self, host: str) -> None:
        _podman("exec", host, "rm", "-rf", _WORK)
        _podman("cp", str(self.local), f"{host}:{_WORK}")
        _podman("exec", host, "chmod", "-R", "go-rwx", _WORK)

    def close(self) -> None:
        self._dir.cleanup()


def _host_script(allowed_groups: Iterable[str], log_dirs: Iterable[str]) -> str:
    """Shell run on a host: prints 'place<TAB>key' for every hit."""
    roots = " ".join(shlex.quote(r) for r in READABLE_ROOTS)
    allowed = " ".join(shlex.quote(g) for g in sorted(allowed_groups))
    logdirs = " ".join(shlex.quote(d) for d in log_dirs)
    # Files in the log directories were searched as logs already.
    not_logs = " ".join("-e " + shlex.quote("^" + d.rstrip("/") + "/") for d in log_dirs)
    return f"""
set -u
work={_WORK}
journal=$(mktemp -p "$work")
journalctl --no-pager -o cat >"$journal" 2>/dev/null || true
# Files others may read: world-readable, or group-readable with a group that
# is not the owning service's own.
readable=$(mktemp -p "$work")
find {roots} -xdev -type f \\( -perm -004 -o -perm -040 \\) -size -20M \\
  -not -path "$work/*" -printf '%g\\t%p\\n' 2>/dev/null >"$readable.all" || true
while IFS="$(printf '\\t')" read -r group path; do
  case " {allowed} " in
    *" $group "*) [ -n "$(find "$path" -perm -004)" ] && printf '%s\\n' "$path" ;;
    *) printf '%s\\n' "$path" ;;
  esac
done <"$readable.all" >"$readable"
# One pass with every value, then each hit file checked value by value.
cat "$work"/k* >"$work/all"
logs=$(grep -rIlF -f "$work/all" {logdirs} 2>/dev/null)
files=$(tr '\\n' '\\0' <"$readable" | xargs -0 -r grep -IlF -f "$work/all" 2>/dev/null \\
  | grep -v {not_logs})
for key in $(ls "$work" | grep '^k[0-9]*$'); do
  pattern="$work/$key"
  for f in $logs; do grep -qF -f "$pattern" "$f" && printf 'log:%s\\t%s\\n' "$f" "$key"; done
  grep -qF -f "$pattern" "$journal" && printf 'journal\\t%s\\n' "$key"
  for f in $files; do
    grep -qF -f "$pattern" "$f" && printf 'readable file:%s\\t%s\\n' "$f" "$key"
  done
done
# Proof the search ran to its end, and over how much.
printf 'done\\t%s %s\\n' "$(wc -l <"$readable")" "$(find {logdirs} -type f 2>/dev/null | wc -l)"
"""


class SearchIncomplete(RuntimeError):
    """The search script on a host did not reach its end."""


def search_hosts(hosts: Iterable[str], values: Mapping[str, str],
                 allowed_groups: Iterable[str] = (),
                 log_dirs: Iterable[str] = ("/var/log",)) -> tuple[list[Hit], list[str]]:
    """Hits on each podman host, and the places searched (with how many files).

    allowed_groups: groups that may read a secret of their own service
    (group-readable files of these groups are searched only when they are
    world-readable too). log_dirs: directories searched whole, whoever may
    read their files (a service's logs: Airflow shows its task logs in the UI).
    """
    log_dirs = tuple(log_dirs)
    hits: list[Hit] = []
    places: list[str] = []
    patterns = _PatternFiles(values)
    script = _host_script(allowed_groups, log_dirs)
    try:
        for host in hosts:
            patterns.install(host)
            try:
                proc = _podman("exec", host, "sh", "-c", script)
            finally:
                _podman("exec", host, "rm", "-rf", _WORK, check=False)
            done = [line for line in proc.stdout.splitlines() if line.startswith("done\t")]
            if not done:
                raise SearchIncomplete(f"{host}: {proc.stderr[-500:]}")
            readable, logs = (int(n) for n in done[-1].split("\t")[1].split())
            if readable == 0 or logs == 0:
                raise SearchIncomplete(f"{host}: {readable} readable files, {logs} log files")
            roots = ", ".join(READABLE_ROOTS)
            places += [f"{host}: {', '.join(log_dirs)} ({logs} files)", f"{host}: journal",
                       f"{host}: {readable} files others may read under {roots}"]
            for line in proc.stdout.splitlines():
                place, _, name = line.rpartition("\t")
                if place and name in patterns.keys:
                    hits.append(Hit(f"{host}: {place}", patterns.keys[name]))
    finally:
        patterns.close()
    return hits, places


class ProcessSampler:
    """Samples every process's arguments inside each host while a play runs.

    A loop inside each host (no podman exec per sample) appends ``ps`` output
    to a 0600 file under /root every 0.2 s; stop() collects and removes it.
    """

    def __init__(self, hosts: Iterable[str], interval: float = 0.2) -> None:
        self.hosts = list(hosts)
        self.interval = interval
        self.samples: dict[str, str] = {}

    def __enter__(self) -> ProcessSampler:
        loop = (f"umask 077; mkdir -p {_WORK}-ps; echo $$ >{_WORK}-ps/pid; "
                f"while :; do echo {SAMPLE_MARK} >>{_WORK}-ps/samples; "
                f"ps -eww -o args= >>{_WORK}-ps/samples; sleep {self.interval}; done")
        for host in self.hosts:
            _podman("exec", "-d", host, "sh", "-c", loop)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for host in self.hosts:
            _podman("exec", host, "sh", "-c",
                    f"kill $(cat {_WORK}-ps/pid) 2>/dev/null; true", check=False)
            out = _podman("exec", host, "cat", f"{_WORK}-ps/samples", check=False)
            self.samples[host] = out.stdout
            _podman("exec", host, "rm", "-rf", f"{_WORK}-ps", check=False)

    def count(self, host: str) -> int:
        """How many snapshots of the host's processes were taken."""
        return self.samples.get(host, "").count(SAMPLE_MARK + "\n")

    def hits(self, values: Mapping[str, str]) -> tuple[list[Hit], list[str]]:
        """Hits in the sampled arguments, and the places searched."""
        hits: list[Hit] = []
        places: list[str] = []
        for host, text in self.samples.items():
            place = f"{host}: process arguments ({self.count(host)} snapshots)"
            places.append(place)
            hits += search_text(place, text, values)
        return hits, places


def write_report(name: str, hits: list[Hit], places: list[str], secrets: int) -> Path:
    """reports/secret-search-<name>.txt of the project: the places searched and every hit."""
    report = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / f"reports/secret-search-{name}.txt"
    report.parent.mkdir(exist_ok=True)
    report.write_text(
        f"{len(hits)} hits in {len(places)} places searched for {secrets} secrets\n"
        + "".join(f"searched: {p}\n" for p in places)
        + "".join(f"HIT: {h}\n" for h in hits))
    return report
