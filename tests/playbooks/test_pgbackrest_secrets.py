"""Repository secrets stay out of pgbackrest.conf and out of every --diff.

pgbackrest_repo_options may hold object-store credentials next to plain
settings. The role's configuration tasks run on the controller into a
temporary directory, in check mode and for real, with --diff: the secret
values are in conf.d/secrets.conf only, and in no output.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from testbed import controller

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"s3-token": "tok-7c1e0a55d2", "azure-key": "azk-91f3bb04e6",
           "sftp-private-key-passphrase": "pph-30d9aa7e15"}
CIPHER = "cph-5f2b8c61e0"

PLAY = """\
- name: The pgbackrest role's configuration files, on the controller
  hosts: probe
  gather_facts: false
  tasks:
    - name: Write the configuration
      ansible.builtin.include_role:
        name: pgbackrest
        tasks_from: configure
      vars:
        _pgbackrest_config_dir: "{{ dir }}"
        _pgbackrest_config: "{{ dir }}/pgbackrest.conf"
        _pgbackrest_user: "{{ lookup('env', 'USER') | default('root', true) }}"
        _pgbackrest_opens_repo: true
"""


def _run(tmp_path: Path, options: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    hosts = (
        "all:\n  hosts:\n    probe:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {ROOT}/.venv/bin/python\n"
        "  children:\n    postgres_primary:\n      hosts:\n        probe:\n")
    (tmp_path / "conf" / "conf.d").mkdir(parents=True, exist_ok=True)
    extra_vars = tmp_path / "vars.json"
    extra_vars.write_text(json.dumps({
        "dir": str(tmp_path / "conf"), "pgbackrest_cipher_pass": CIPHER,
        "pgbackrest_repo_options": {"storage-verify-tls": "n", **options}}))
    os.chmod(extra_vars, 0o600)
    return controller.run(tmp_path, hosts, PLAY, "-e", f"@{extra_vars}", "--diff", *extra,
                          extra_env={"ANSIBLE_STRATEGY": "linear"})


def test_secret_repo_options_reach_the_secrets_file_and_no_diff(tmp_path: Path) -> None:
    outputs = []
    check = _run(tmp_path, SECRETS, "--check")
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    outputs.append(check)
    apply = _run(tmp_path, SECRETS)
    assert apply.returncode == 0, apply.stdout[-3000:] + apply.stderr[-3000:]
    outputs.append(apply)
    # A changed secret and a changed plain option, shown with --diff.
    changed = {key: value + "-new" for key, value in SECRETS.items()}
    again = _run(tmp_path, changed)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    outputs.append(again)

    conf = (tmp_path / "conf/pgbackrest.conf").read_text()
    secrets = (tmp_path / "conf/conf.d/secrets.conf").read_text()
    assert "repo1-storage-verify-tls=n" in conf
    for key, value in changed.items():
        assert f"repo1-{key}={value}\n" in secrets
        assert f"repo1-{key}" not in conf
    assert f"repo1-cipher-pass={CIPHER}\n" in secrets
    # The check run showed the new pgbackrest.conf, so --diff was on.
    assert "repo1-storage-verify-tls=n" in check.stdout
    for proc in outputs:
        text = proc.stdout + proc.stderr
        for value in [*SECRETS.values(), *changed.values(), CIPHER]:
            assert value not in text
    assert (tmp_path / "conf/conf.d/secrets.conf").stat().st_mode & 0o007 == 0
