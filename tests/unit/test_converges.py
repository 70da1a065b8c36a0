"""The molecule converges build what playbooks/site.yml builds, from its own tier playbooks.

site.yml is a list of tiers (playbooks/tiers/); each scenario's converge
imports the tiers it needs, in site.yml's order, and writes no role play of
its own, so a change to a play (its hosts, its tags, a role added) reaches
site.yml and every scenario at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
CONVERGES = sorted((ROOT / "molecule").glob("*/converge.yml"))


def _plays(path: Path) -> list[dict[str, Any]]:
    plays: list[dict[str, Any]] = yaml.safe_load(path.read_text())
    return plays


def _imports(path: Path) -> list[Path]:
    return [(path.parent / play["ansible.builtin.import_playbook"]).resolve()
            for play in _plays(path) if "ansible.builtin.import_playbook" in play]


def _tiers(path: Path) -> list[Path]:
    return [p for p in _imports(path) if p.parent == PLAYBOOKS / "tiers"]


def test_site_is_the_tiers_in_order_and_every_tier_is_in_it() -> None:
    plays = _plays(PLAYBOOKS / "site.yml")
    assert all(set(play) == {"name", "ansible.builtin.import_playbook"} for play in plays), plays
    tiers = _tiers(PLAYBOOKS / "site.yml")
    assert len(tiers) == len(plays)
    assert sorted(tiers) == sorted((PLAYBOOKS / "tiers").glob("*.yml"))
    assert tiers[0].name == "guard.yml"


def test_every_scenario_converges_with_one_of_these_files() -> None:
    for molecule in sorted((ROOT / "molecule").glob("*/molecule.yml")):
        config = yaml.safe_load(molecule.read_text())
        converge = (config.get("provisioner", {}).get("playbooks", {}) or {}).get("converge")
        path = (Path(converge.replace("${MOLECULE_PROJECT_DIRECTORY}", str(ROOT)))
                if converge else molecule.parent / "converge.yml")
        assert path.resolve() in CONVERGES, f"{molecule}: converges with {path}"


@pytest.mark.parametrize("converge", CONVERGES, ids=lambda p: p.parent.name)
def test_a_converge_imports_site_tiers_in_site_order_and_writes_no_role_play(
        converge: Path) -> None:
    order = _tiers(PLAYBOOKS / "site.yml")
    tiers = _tiers(converge)
    assert tiers, f"{converge} imports no tier of playbooks/site.yml"
    positions = [order.index(t) for t in tiers]
    assert positions == sorted(set(positions)), \
        f"{converge}: tiers {[t.name for t in tiers]} are not in site.yml's order"
    for play in _plays(converge):
        assert "roles" not in play, f"{converge}: play '{play.get('name')}' lists roles itself"
        for task in play.get("tasks", []):
            assert "ansible.builtin.include_role" not in task, (converge, task.get("name"))
    # The tiers read secrets from the inventory: a converge that needs them loads the dev vault.
    if any(t.name != "base.yml" for t in tiers):
        vault = (ROOT / "molecule/_shared/load_dev_vault.yml").resolve()
        assert vault in _imports(converge), converge
