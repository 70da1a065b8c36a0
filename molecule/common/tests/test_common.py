"""Observed state of a host after the common role.

Every check runs on both hosts; the SSH host is also checked from the
controller, through its hardened sshd, the way operators reach real hosts.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections import Counter
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import pytest

Host = Any
SSH_HOST = "wops-mol-common-ssh"
SSH_ADDRESS = ("127.0.0.1", "22022")
SSHD_DROPIN = "/etc/ssh/sshd_config.d/50-warehouse-ops.conf"
JOURNALD_DROPIN = "/etc/systemd/journald.conf.d/50-warehouse-ops.conf"
CA_FILE = "/usr/local/share/ca-certificates/warehouse-ops/ca-certificates.crt"
BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# What update-ca-certificates builds the bundle from: the distribution's
# certificates that /etc/ca-certificates.conf enables, then every *.crt under
# /usr/local/share/ca-certificates (the role's file among them).
DISTRIBUTION_CAS = (
    "sed -e '/^$/d' -e '/^#/d' -e '/^!/d' /etc/ca-certificates.conf | while read -r crt; do "
    'if [ -f "/usr/share/ca-certificates/$crt" ]; then cat "/usr/share/ca-certificates/$crt"; '
    "echo; fi; done"
)
LOCAL_CAS = "find -L /usr/local/share/ca-certificates -type f -name '*.crt' -exec cat {} +"
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


def _is_ssh_host(host: Host) -> bool:
    return str(host.check_output("hostname")) == SSH_HOST


def _ssh(user: str, *command: str, known_hosts: Path | None = None,
         options: tuple[str, ...] = (), askpass: Path | None = None,
         ) -> subprocess.CompletedProcess[str]:
    """ssh from the controller to the SSH host, host key checking on.

    With ``askpass`` (a program printing a password) ssh may ask for a
    password and answers with it; otherwise it runs in batch mode and never
    asks.
    """
    ssh_dir = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ssh"
    env = dict(os.environ)
    prompts: tuple[str, ...] = ("-o", "BatchMode=yes")
    if askpass is not None:
        env.update(SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force")
        prompts = ("-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1")
    argv = [
        "ssh", "-p", SSH_ADDRESS[1], "-i", str(ssh_dir / "id_ed25519"),
        "-o", f"UserKnownHostsFile={known_hosts or ssh_dir / 'known_hosts'}",
        "-o", "StrictHostKeyChecking=yes", *prompts, "-o", "IdentitiesOnly=yes",
        "-o", "ConnectTimeout=10", *options, f"{user}@{SSH_ADDRESS[0]}", *command,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                          env=env, stdin=subprocess.DEVNULL)


def _sshd_settings(host: Host, *args: str) -> dict[str, str]:
    """sshd's effective configuration (sshd -T, drop-ins included), key by key."""
    out: str = host.check_output("sshd -T" + " %s" * len(args), *args)
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def _certificates(text: str) -> Counter[str]:
    """The certificates of a PEM text, each as its base64 body without line breaks, counted."""
    return Counter("".join(body.split()) for body in _PEM.findall(text))


def _effective(host: Host, config: str, section: str) -> dict[str, str]:
    """One section's settings as systemd reads a configuration (systemd/journald.conf):
    the main file and its drop-ins in systemd's order, the last assignment winning."""
    settings: dict[str, str] = {}
    current = ""
    for raw in host.check_output("systemd-analyze cat-config %s", config).splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == section and "=" in line:
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def test_base_packages_installed(host: Host) -> None:
    for name in ("ca-certificates", "curl", "locales", "tzdata", "systemd-timesyncd"):
        assert host.package(name).is_installed, name


def test_locale_generated_and_default(host: Host) -> None:
    assert "en_US.utf8" in host.check_output("locale -a")
    assert host.file("/etc/default/locale").content_string.strip() == "LANG=en_US.UTF-8"


def test_timezone_is_utc(host: Host) -> None:
    localtime = host.file("/etc/localtime")
    assert localtime.is_symlink
    assert localtime.linked_to == "/usr/share/zoneinfo/Etc/UTC"
    assert host.check_output("date +%Z") == "UTC"


def test_controller_ca_trusted_by_openssl_and_pip(host: Host) -> None:
    trusted = host.file(CA_FILE)
    assert trusted.exists and trusted.mode == 0o644
    ours = _certificates(trusted.content_string)
    assert ours, f"no certificate in {CA_FILE}"
    # update-ca-certificates took the file in: it links each local CA into
    # /etc/ssl/certs (OpenSSL's hashed lookup) as <name>.pem ...
    assert host.file("/etc/ssl/certs/ca-certificates.pem").linked_to == CA_FILE
    # ... and writes the bundle OpenSSL, curl and pip read as the enabled
    # distribution CAs plus the local ones. Most of the controller's bundle is
    # the same public CAs, so being in the bundle proves nothing by itself:
    # each of its certificates must be there once more than the distribution
    # alone has it. A bundle not rebuilt after the copy has the distribution's
    # count and fails here.
    bundle = _certificates(host.file(BUNDLE).content_string)
    distribution = _certificates(host.check_output("sh -c %s", DISTRIBUTION_CAS))
    local = _certificates(host.check_output("sh -c %s", LOCAL_CAS))
    assert sum(distribution.values()) > 100, "no distribution CA read"
    miscounted = {cert[-24:]: {"bundle": bundle[cert], "distribution": distribution[cert],
                               "local": local[cert]}
                  for cert in ours if bundle[cert] != distribution[cert] + local[cert]}
    assert not miscounted, miscounted
    assert "cert = /etc/ssl/certs/ca-certificates.crt" in host.file("/etc/pip.conf").content_string


def test_timesyncd_configured_and_enabled(host: Host) -> None:
    assert host.file("/etc/systemd/timesyncd.conf.d/50-warehouse-ops.conf").mode == 0o644
    # The servers timesyncd reads, drop-ins applied (a FallbackNTP= line or a
    # commented-out NTP= does not count).
    effective = _effective(host, "systemd/timesyncd.conf", "Time")
    assert effective.get("NTP") == "0.debian.pool.ntp.org 1.debian.pool.ntp.org", effective
    assert host.service("systemd-timesyncd").is_enabled


def test_journald_limits_in_effect(host: Host) -> None:
    conf = host.file(JOURNALD_DROPIN)
    assert conf.mode == 0o644
    # The values journald reads: its main file and every drop-in in systemd's
    # order, the last assignment winning; a commented default or a later
    # drop-in that overrides the role's does not pass.
    effective = _effective(host, "systemd/journald.conf", "Journal")
    wanted = {"Storage": "persistent", "Compress": "yes", "SystemMaxUse": "1G",
              "RuntimeMaxUse": "128M", "MaxRetentionSec": "1month"}
    assert {key: effective.get(key) for key in wanted} == wanted, effective
    assert host.service("systemd-journald").is_running
    # The running journald read them: it started after the drop-in was last
    # written (the role restarts it on a change; a journald from before the
    # converge fails here).
    started = host.check_output("systemctl show -p ExecMainStartTimestamp --value %s",
                                "systemd-journald")
    started_at = int(host.check_output("date -d %s +%%s", started))
    written_at = int(host.check_output("stat -c %%Y %s", JOURNALD_DROPIN))
    assert started_at >= written_at, (started, written_at)
    # And it keeps the system journal on disk (Storage=persistent).
    machine = host.check_output("cat /etc/machine-id")
    assert host.file(f"/var/log/journal/{machine}/system.journal").is_file


def test_no_sshd_on_container_hosts(host: Host) -> None:
    # The hardening is for real hosts; a podman connection has no sshd.
    if _is_ssh_host(host):
        pytest.skip("reached over SSH: its sshd is the role's to harden")
    assert not host.package("openssh-server").is_installed
    assert not host.file("/etc/ssh/sshd_config.d/50-warehouse-ops.conf").exists


def test_no_failed_units(host: Host) -> None:
    assert host.check_output("systemctl --failed --no-legend --plain") == ""


def test_sshd_hardened_where_hosts_are_reached_over_ssh(host: Host) -> None:
    if not _is_ssh_host(host):
        pytest.skip("reached with podman exec: no sshd to harden")
    dropin = host.file("/etc/ssh/sshd_config.d/50-warehouse-ops.conf")
    assert dropin.exists and dropin.mode == 0o644
    # The configuration sshd runs with, drop-in included.
    effective = _sshd_settings(host)
    assert effective["permitrootlogin"] == "without-password"  # prohibit-password
    assert effective["passwordauthentication"] == "no"
    assert effective["kbdinteractiveauthentication"] == "no"
    assert effective["allowtcpforwarding"] == "no"
    assert effective["maxauthtries"] == "3"
    assert host.service("ssh").is_running


def test_operator_reaches_the_host_over_ssh_with_sudo() -> None:
    done = _ssh("wops", "sudo", "-n", "id", "-u")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


def test_converge_came_through_sshd(hosts: dict[str, Host]) -> None:
    # A key login of wops before the converge wrote sshd's hardening drop-in:
    # the converge itself came over SSH (the checks' own logins come later).
    host = hosts[SSH_HOST]
    written = float(host.check_output("stat -c %%Y %s", SSHD_DROPIN))
    journal = host.check_output("journalctl -u ssh --no-pager -o short-unix")
    logins = [float(line.split()[0]) for line in journal.splitlines()
              if "Accepted publickey for wops" in line]
    assert any(t < written for t in logins), (written, logins[:5])


def test_host_key_checking_refuses_a_changed_host_key(tmp_path: Path) -> None:
    name = f"[{SSH_ADDRESS[0]}]:{SSH_ADDRESS[1]}"
    ssh_dir = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ssh"
    # A key that is not the host's, recorded under the host's name.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
                   capture_output=True, check=True)
    key_type, key = (tmp_path / "other.pub").read_text().split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{name} {key_type} {key}\n")
    done = _ssh("wops", "true", known_hosts=wrong)
    assert done.returncode != 0
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in done.stderr
    # The scenario's own known_hosts holds the real key, and it is accepted.
    assert name in (ssh_dir / "known_hosts").read_text()
    assert _ssh("wops", "true").returncode == 0


def test_root_and_passwords_are_refused_over_ssh(
        hosts: dict[str, Host], tmp_path: Path) -> None:
    host = hosts[SSH_HOST]
    # What sshd applies to a login as root and as the operator (Match blocks
    # included): root with a key at most (PermitRootLogin prohibit-password),
    # and no password or keyboard-interactive login for anyone.
    for user in ("root", "wops"):
        effective = _sshd_settings(host, "-C", f"user={user},host=localhost,addr=127.0.0.1")
        assert effective["passwordauthentication"] == "no", user
        assert effective["kbdinteractiveauthentication"] == "no", user
        if user == "root":
            assert effective["permitrootlogin"] == "without-password"
    # Then real logins with a right password: root and the operator get one
    # for the length of the test, and ssh answers a password prompt with it.
    # Both are refused, and sshd names public keys as the only way in; a sshd
    # that took passwords (for root or anyone) would let the login through
    # (exit 0) or list "password".
    password = token_urlsafe(18)
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\necho {shlex.quote(password)}\n")
    askpass.chmod(0o700)
    saved = {user: host.check_output("getent shadow %s | cut -d: -f2", user)
             for user in ("root", "wops")}
    try:
        for user, before in saved.items():
            changed = host.run("echo %s | chpasswd", f"{user}:{password}")
            assert changed.rc == 0, changed.stderr
            assert host.check_output("getent shadow %s | cut -d: -f2", user) != before
        for user in saved:
            tried = _ssh(user, "true", askpass=askpass, options=(
                "-o", "PubkeyAuthentication=no",
                "-o", "PreferredAuthentications=password,keyboard-interactive"))
            assert tried.returncode == 255, (user, tried.returncode, tried.stdout, tried.stderr)
            assert "Permission denied (publickey)." in tried.stderr, (user, tried.stderr)
    finally:
        for user, field in saved.items():
            host.run("usermod -p %s %s", field, user)
    assert {user: host.check_output("getent shadow %s | cut -d: -f2", user)
            for user in saved} == saved
    # The same sshd lets the operator in with its key: the refusals are its
    # policy, not a host that does not answer.
    key = _ssh("wops", "id", "-un")
    assert key.returncode == 0 and key.stdout.strip() == "wops", key.stderr
