"""Observed state of a host after the common role."""

from __future__ import annotations

from typing import Any

Host = Any


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
    assert not host.package("openssh-server").is_installed
    assert not host.file("/etc/ssh/sshd_config.d/50-warehouse-ops.conf").exists


def test_no_failed_units(host: Host) -> None:
    assert host.check_output("systemctl --failed --no-legend --plain") == ""
