"""README variable tables are generated from the argument specs, and agree with the defaults.

meta/argument_specs.yml describes each variable, defaults/main.yml holds its
value; scripts/role_docs.py writes the README tables from both.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/role_docs.py"
ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))

_spec = importlib.util.spec_from_file_location("role_docs", SCRIPT)
assert _spec and _spec.loader
rd: Any = importlib.util.module_from_spec(_spec)
sys.modules["role_docs"] = rd
_spec.loader.exec_module(rd)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args],
                          capture_output=True, text=True, check=False)


def test_readme_tables_are_what_the_specs_generate() -> None:
    proc = _run("--check")
    assert proc.returncode == 0, f"scripts/role_docs.py --check:\n{proc.stderr}"


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_agree_with_the_defaults_file(role: str) -> None:
    spec = yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())
    options: dict[str, dict[str, Any]] = spec["argument_specs"]["main"]["options"]
    path = ROOT / "roles" / role / "defaults/main.yml"
    defaults: dict[str, Any] = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    differ = {
        name: (option["default"], defaults[name])
        for name, option in options.items()
        if "default" in option and name in defaults and option["default"] != defaults[name]
    }
    assert differ == {}, (
        f"{role}: argument spec default differs from defaults/main.yml (spec, defaults): {differ}; "
        "keep the value in defaults/main.yml only")


@pytest.mark.parametrize(("value", "shown"), [
    ("15", '"15"'),
    ("off", '"off"'),
    ("", '""'),
    ("*", '"*"'),
    ("{{ wops_environment }}", '"{{ wops_environment }}"'),
    ("/usr/lib/postgresql/{{ v }}/bin", "/usr/lib/postgresql/{{ v }}/bin"),
    ("3.3.2", "3.3.2"),
    (0.05, "0.05"),
    (False, "false"),
    ([], "[]"),
    (["*", "a,b", "c"], '["*", "a,b", c]'),
    ({"full": "Sun 01:00", "x": [1, 2]}, "{full: Sun 01:00, x: [1, 2]}"),
])
def test_defaults_are_shown_as_yaml_reads_them(value: object, shown: str) -> None:
    assert rd.flow(value) == shown
    if isinstance(value, str) and value:
        assert yaml.safe_load(shown) == value


def test_long_defaults_are_shortened() -> None:
    assert rd.shorten(list(range(100)), 20) == ("[0, 1, 2, 3, 4, …]", "100 items")
    entries = [{"name": f"user{i}", "password_var": "vault_x"} for i in range(3)]
    assert rd.shorten(entries, 60) == (
        "[{name: user0, …}, {name: user1, …}, {name: user2, …}]", "")
    text, note = rd.shorten("word " * 40, 30)
    assert text.endswith(" …") and len(text) <= 30 and note == ""


def test_cells_escape_pipes_and_code_holds_backticks() -> None:
    assert rd.cell("`{{ x | first }}`\n  more") == "`{{ x \\| first }}` more"
    assert rd.code("a`b") == "`` a`b ``"


def _copy_role(tmp_path: Path, role: str = "pki") -> Path:
    shutil.copytree(ROOT / "roles" / role, tmp_path / "roles" / role)
    return tmp_path / "roles" / role


def test_check_names_the_rows_that_differ_and_a_rewrite_fixes_them(tmp_path: Path) -> None:
    role = _copy_role(tmp_path)
    spec = role / "meta/argument_specs.yml"
    spec.write_text(spec.read_text().replace(
        "description: Group of the directory",
        "description: A new text on the group of the directory"))
    readme = role / "README.md"
    prose = readme.read_text().split("<!-- BEGIN role_docs")[0]

    check = _run("--check", "--roles-dir", str(tmp_path / "roles"))
    assert check.returncode == 1
    assert "table 'variables': rows differ: pki_group" in check.stderr
    assert "A new text" not in readme.read_text()

    assert _run("--roles-dir", str(tmp_path / "roles")).returncode == 0
    assert "| A new text on the group of the directory" in readme.read_text()
    assert readme.read_text().startswith(prose)
    assert _run("--check", "--roles-dir", str(tmp_path / "roles")).returncode == 0


def test_a_missing_table_block_fails_even_without_check(tmp_path: Path) -> None:
    role = _copy_role(tmp_path)
    readme = role / "README.md"
    text = readme.read_text().replace("BEGIN role_docs: variables", "BEGIN role_docs: other")
    readme.write_text(text)
    proc = _run("--roles-dir", str(tmp_path / "roles"))
    assert proc.returncode == 1
    assert "block 'other' is not a group of the role" in proc.stderr
    assert "no block for group 'variables'" in proc.stderr


def test_every_group_starts_at_an_option_of_its_role() -> None:
    for role, starts in rd.GROUPS.items():
        loaded = rd.load_role(ROOT / "roles" / role)
        groups = rd.groups(loaded)
        assert list(groups) == [group for group, _ in starts]
        assert all(groups.values()), f"{role}: a group without options"


@pytest.mark.parametrize("role", ROLES)
def test_every_default_shown_whole_reads_back_as_its_value(role: str) -> None:
    loaded = rd.load_role(ROOT / "roles" / role)
    for name, value in loaded.defaults.items():
        text, _ = rd.shorten(value)
        if text == rd.flow(value):
            assert yaml.safe_load(text) == value, f"{role}: {name} shown as {text}"
