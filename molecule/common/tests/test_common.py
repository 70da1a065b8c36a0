"""Observed state of a host after the common role.

Every check runs on both hosts; the SSH host is also checked from the
controller, through its hardened sshd, the way operators reach real hosts.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

Host = Any
SSH_HOST = "wops-mol-common-ssh"
SSH_ADDRESS = ("127.0.0.1", "22022")
SSHD_DROPIN = "/etc/ssh/sshd_config.d/50-warehouse-ops.conf"


def _is_ssh_host(host: Host) -> bool:
    return str(host.check_output("hostname")) == SSH_HOST


def _ssh(user: str, *command: str, known_hosts: Path | None = None,
         options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """ssh from the controller to the SSH host, host key checking on."""
    ssh_dir = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ssh"
    argv = [
        "ssh", "-p", SSH_ADDRESS[1], "-i", str(ssh_dir / "id_ed25519"),
        "-o", f"UserKnownHostsFile={known_hosts or ssh_dir / 'known_hosts'}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        "-o", "ConnectTimeout=10", *options, f"{user}@{SSH_ADDRESS[0]}", *command,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


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
    trusted = host.file("/usr/local/share/ca-certificates/warehouse-ops/ca-certificates.crt")
    assert trusted.exists and trusted.mode == 0o644
    bundle = host.file("/etc/ssl/certs/ca-certificates.crt").content_string
    # Every certificate of the controller's bundle is in the host's bundle.
    first = trusted.content_string.split("-----END CERTIFICATE-----")[0]
    assert first.strip().splitlines()[-1] in bundle
    assert "cert = /etc/ssl/certs/ca-certificates.crt" in host.file("/etc/pip.conf").content_string


def test_timesyncd_configured_and_enabled(host: Host) -> None:
    conf = host.file("/etc/systemd/timesyncd.conf.d/50-warehouse-ops.conf").content_string
    assert "NTP=0.debian.pool.ntp.org 1.debian.pool.ntp.org" in conf
    assert host.service("systemd-timesyncd").is_enabled


def test_journald_limits_in_effect(host: Host) -> None:
    conf = host.file("/etc/systemd/journald.conf.d/50-warehouse-ops.conf")
    assert conf.mode == 0o644
    assert "SystemMaxUse=1G" in conf.content_string
    assert host.service("systemd-journald").is_running
    # journald restarted with the drop-in: the persistent journal exists.
    assert host.file("/var/log/journal").is_directory


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
    effective = dict(
        line.split(" ", 1) for line in host.check_output("sshd -T").splitlines() if " " in line
    )
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


def test_root_and_passwords_are_refused_over_ssh() -> None:
    root = _ssh("root", "true")
    assert root.returncode == 255 and "Permission denied" in root.stderr
    password = _ssh("wops", "true", options=(
        "-o", "PubkeyAuthentication=no",
        "-o", "PreferredAuthentications=password,keyboard-interactive"))
    assert password.returncode == 255
    # The server offers public keys only.
    assert "Permission denied (publickey)" in password.stderr
