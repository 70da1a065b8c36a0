"""The installed collections satisfy requirements.yml."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _installed() -> dict[str, Version]:
    out = subprocess.run(
        ["ansible-galaxy", "collection", "list", "--format", "json"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout
    found: dict[str, Version] = {}
    for collections in json.loads(out).values():
        for name, info in collections.items():
            version = Version(info["version"])
            if name not in found or version > found[name]:
                found[name] = version
    return found


def test_every_required_collection_is_installed_at_a_satisfying_version() -> None:
    required = yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]
    installed = _installed()
    problems = []
    for entry in required:
        name, spec = entry["name"], SpecifierSet(entry["version"])
        if name not in installed:
            problems.append(f"{name}: not installed")
        elif installed[name] not in spec:
            problems.append(f"{name}: {installed[name]} does not satisfy {spec}")
    assert not problems, "; ".join(problems)


def test_every_collection_used_in_the_tree_is_required() -> None:
    spec = yaml.safe_load((ROOT / "requirements.yml").read_text())
    required = {e["name"] for e in spec["collections"]}
    used: set[str] = set()
    # A task's module key: "namespace.collection.module:" at the start of a line.
    key = re.compile(r"^\s*(?:- )?([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*:")
    for path in [*ROOT.glob("roles/**/*.yml"), *ROOT.glob("playbooks/*.yml"),
                 *ROOT.glob("molecule/**/*.yml")]:
        for line in path.read_text().splitlines():
            match = key.match(line)
            if match and (match.group(1) != "ansible" or match.group(2) == "posix"):
                used.add(f"{match.group(1)}.{match.group(2)}")
    assert used <= required, f"used but not in requirements.yml: {sorted(used - required)}"
