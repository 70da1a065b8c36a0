"""The custom modules' documentation and argument specs agree, option by option.

The login options are written twice by nature (documentation for people, an
argument_spec for AnsibleModule) but each only once in the project: the
pg_login doc fragment and module_utils/pg_connect.py. These tests read every
module's documentation as ansible-doc does (fragments merged) and its
argument_spec as AnsibleModule receives it, and compare the two, so neither
can change without the other.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pg_connect
import pytest
import yaml
from ansible.plugins.loader import fragment_loader
from ansible.utils.plugin_docs import get_docstring

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "plugins/modules").glob("*.py"))
FRAGMENT = ROOT / "plugins/doc_fragments/pg_login.py"
# module_utils the modules import as ansible.module_utils.<name> (conftest.py
# puts plugins/module_utils on sys.path).
UTILS = sorted(p.stem for p in (ROOT / "plugins/module_utils").glob("*.py"))


class _Captured(Exception):
    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("argument_spec captured")
        self.kwargs = kwargs


class _CapturingModule:
    """Stands in for AnsibleModule: records its arguments and stops main()."""

    def __init__(self, **kwargs: Any) -> None:
        raise _Captured(kwargs)


@pytest.fixture(scope="module")
def project_utils() -> Iterator[None]:
    """The project's module_utils importable as Ansible ships them to a host."""
    added = []
    for name in UTILS:
        key = f"ansible.module_utils.{name}"
        if key not in sys.modules:
            sys.modules[key] = importlib.import_module(name)
            added.append(key)
    yield
    for key in added:
        del sys.modules[key]


def _load(name: str) -> ModuleType:
    path = ROOT / "plugins/modules" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"wops_module_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _argument_spec(name: str) -> dict[str, Any]:
    module = _load(name)
    module.AnsibleModule = _CapturingModule  # type: ignore[attr-defined]
    with pytest.raises(_Captured) as captured:
        module.main()
    spec: dict[str, Any] = captured.value.kwargs["argument_spec"]
    return spec


def _documented_options(name: str) -> dict[str, Any]:
    fragment_loader.add_directory(str(ROOT / "plugins/doc_fragments"))
    doc, _plainexamples, _returndocs, _metadata = get_docstring(
        str(ROOT / "plugins/modules" / f"{name}.py"), fragment_loader, is_module=True)
    options: dict[str, Any] = doc["options"]
    return options


def _own_documentation(name: str) -> dict[str, Any]:
    """The module's DOCUMENTATION as written, before any fragment is merged."""
    doc: dict[str, Any] = yaml.safe_load(_load(name).DOCUMENTATION)
    return doc


def _differences(doc: dict[str, Any], spec: dict[str, Any], where: str = "") -> list[str]:
    """What a person reading the docs would get wrong about the spec."""
    problems = []
    for key in sorted(set(doc) ^ set(spec)):
        side = "documented only" if key in doc else "in the argument_spec only"
        problems.append(f"{where}{key}: {side}")
    for key in sorted(set(doc) & set(spec)):
        d, s = doc[key], spec[key]
        pairs = {
            "type": (d.get("type", "str"), s.get("type", "str")),
            "default": (d.get("default"), s.get("default")),
            "required": (bool(d.get("required")), bool(s.get("required"))),
            "aliases": (sorted(d.get("aliases", [])), sorted(s.get("aliases", []))),
            "choices": (d.get("choices"), s.get("choices")),
            "elements": (d.get("elements"), s.get("elements")),
        }
        problems += [f"{where}{key}.{field}: documented {a!r}, argument_spec {b!r}"
                     for field, (a, b) in pairs.items() if a != b]
        if d.get("suboptions") or s.get("options"):
            problems += _differences(d.get("suboptions", {}), s.get("options", {}),
                                     f"{where}{key}.")
    return problems


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_match_the_argument_spec(name: str, project_utils: None) -> None:
    assert _differences(_documented_options(name), _argument_spec(name)) == []


@pytest.mark.parametrize("name", MODULES)
def test_login_options_come_from_the_fragment_only(name: str, project_utils: None) -> None:
    login = set(pg_connect.connection_argument_spec("postgres"))
    if not login <= set(_argument_spec(name)):
        pytest.skip(f"{name} does not connect to PostgreSQL")
    own = _own_documentation(name)
    assert "pg_login" in own.get("extends_documentation_fragment", [])
    # The module states only its default database; everything else is the fragment's.
    assert own["options"].get("login_db") == {"default": own["options"]["login_db"]["default"]}
    assert login & set(own["options"]) == {"login_db"}


def test_fragment_documents_every_login_option_and_nothing_else() -> None:
    spec = pg_connect.connection_argument_spec("postgres")
    fragment: dict[str, Any] = yaml.safe_load(_load_fragment().ModuleDocFragment.DOCUMENTATION)
    options = dict(fragment["options"])
    # login_db's default is each module's own (checked above against its spec).
    spec["login_db"].pop("default")
    assert _differences(options, spec) == []
    assert all(option.get("description") for option in options.values())


def test_password_is_never_logged() -> None:
    assert pg_connect.connection_argument_spec("postgres")["login_password"]["no_log"] is True


def _load_fragment() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wops_fragment_pg_login", FRAGMENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
