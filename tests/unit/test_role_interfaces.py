"""Every role's public interface is consistent: defaults, argument specs, README.

defaults/main.yml is the interface; meta/argument_specs.yml must mirror it key
for key so that validation covers every variable, and the README must document
each one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks/main.yml").exists())


def _defaults(role: str) -> dict[str, object]:
    path = ROOT / "roles" / role / "defaults/main.yml"
    return yaml.safe_load(path.read_text()) or {} if path.exists() else {}


def _spec_options(role: str) -> dict[str, dict[str, object]]:
    spec = yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())
    options: dict[str, dict[str, object]] = spec["argument_specs"]["main"]["options"]
    return options


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_mirror_defaults(role: str) -> None:
    defaults, options = set(_defaults(role)), set(_spec_options(role))
    assert defaults - options == set(), f"{role}: defaults without argument spec"
    # Required options may have no default; every other option must have one.
    no_default = {k for k in options - defaults if not _spec_options(role)[k].get("required")}
    assert no_default == set(), f"{role}: argument specs without a default"


@pytest.mark.parametrize("role", ROLES)
def test_variables_are_prefixed_with_the_role_name(role: str) -> None:
    prefix = role.lstrip("_") + "_"
    bad = [k for k in _spec_options(role) if not k.startswith(prefix)]
    assert bad == [], f"{role}: variables must start with {prefix}"


@pytest.mark.parametrize("role", ROLES)
def test_readme_documents_every_variable(role: str) -> None:
    readme = (ROOT / "roles" / role / "README.md").read_text()
    missing = [k for k in _spec_options(role) if f"`{k}`" not in readme]
    assert missing == [], f"{role}/README.md does not document {missing}"


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_described_and_typed(role: str) -> None:
    for name, option in _spec_options(role).items():
        assert option.get("description"), f"{role}: {name} has no description"
        assert option.get("type"), f"{role}: {name} has no type"
