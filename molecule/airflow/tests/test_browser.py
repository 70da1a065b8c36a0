"""The Airflow UI in a real browser over HTTPS, with the project CA trusted as a user would.

Debian's chromium, headless, driven by Playwright. The browser trusts the
project CA the way a user's Chromium on Linux does, through the NSS database
in its HOME (certutil), here a throwaway one; nothing ignores certificate
errors. The controller cannot resolve the container's name, so chromium maps
it to the container's address (--host-resolver-rules): the URL carries the
name the certificate is issued for, as a user's would.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Error, Playwright, sync_playwright

from testbed import airflow_checks

HOST = "wops-mol-af-db"
PORT = 8080
URL = f"https://{HOST}:{PORT}"
CHROMIUM = "/usr/bin/chromium"
DAG = "warehouse_etl"


@pytest.fixture(scope="module")
def address() -> str:
    """The container's address on its podman network, as the controller reaches it."""
    out = subprocess.run(
        ["podman", "inspect", HOST, "--format",
         "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert re.fullmatch(r"[0-9.]+", out), f"no address for {HOST}: {out!r}"
    return out


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


def _home(root: Path, ca: Path | None) -> Path:
    """A HOME whose NSS database (the one Chromium reads on Linux) trusts `ca`, or no CA."""
    db = root / ".pki/nssdb"
    db.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-N", "--empty-password"],
                   capture_output=True, text=True, check=True)
    if ca is not None:
        subprocess.run(["certutil", "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", "wops-ca",
                        "-i", str(ca)], capture_output=True, text=True, check=True)
    return root


def _browser(pw: Playwright, home: Path, address: str) -> Browser:
    return pw.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=[f"--host-resolver-rules=MAP {HOST} {address}", "--no-proxy-server"],
        env={**os.environ, "HOME": str(home)})


def _wait_for_the_dag(host: Any, password: str) -> None:
    """The scenario's DAG is parsed (the dag-processor may still be at it)."""
    token = airflow_checks.token(host, password)
    deadline = time.monotonic() + 180
    while airflow_checks.api(host, "GET", f"/api/v2/dags/{DAG}", token)[0] != 200:
        assert time.monotonic() < deadline, f"the {DAG} DAG never showed up"
        time.sleep(5)


def test_the_ui_logs_in_over_https_and_lists_the_dag(
        playwright: Playwright, address: str, hosts: dict[str, Any], secrets: dict[str, str],
        stack: dict[str, str], tmp_path: Path) -> None:
    password = secrets["vault_airflow_admin_password"]
    _wait_for_the_dag(hosts[HOST], password)
    ca = Path(stack["wops_ca_dir"]) / "ca.crt"
    assert ca.is_file(), f"no project CA at {ca} (wops_ca_dir)"
    browser = _browser(playwright, _home(tmp_path / "home", ca), address)
    page = browser.new_page()
    try:
        response = page.goto(f"{URL}/auth/login/")
        assert response is not None and response.ok, response and response.status
        # The certificate the browser accepted: the host's, issued by the project CA.
        details = response.security_details()
        assert details is not None, "no TLS details: not an https page"
        assert details.get("subjectName") == HOST, details
        assert details.get("issuer") == stack["wops_ca_common_name"], details
        page.fill("#username", "admin")
        page.fill("#password", password)
        page.click("input[type=submit]")
        page.wait_for_url(lambda url: url.startswith(URL) and "/auth/login" not in url)
        page.goto(f"{URL}/dags")
        # What the UI rendered once signed in: the DAG list, with the ETL DAG.
        page.wait_for_function("dag => document.body.innerText.includes(dag)", arg=DAG,
                               timeout=90_000)
        assert page.url.startswith(f"{URL}/dags"), page.url
    except (Error, AssertionError) as exc:
        shot = tmp_path / "ui.png"
        page.screenshot(path=str(shot), full_page=True)
        raise AssertionError(
            f"{exc}\nat {page.url} (screenshot {shot}), the page reads:\n"
            f"{page.locator('body').inner_text()[:2000]}") from exc
    finally:
        browser.close()


def test_without_the_ca_the_browser_refuses_the_ui(
        playwright: Playwright, address: str, tmp_path: Path) -> None:
    browser = _browser(playwright, _home(tmp_path / "home", None), address)
    try:
        with pytest.raises(Error, match="ERR_CERT_AUTHORITY_INVALID"):
            browser.new_page().goto(f"{URL}/auth/login/")
    finally:
        browser.close()


def test_plain_http_does_not_serve_the_ui(address: str) -> None:
    conn = http.client.HTTPConnection(address, PORT, timeout=10)
    try:
        conn.request("GET", "/auth/login/", headers={"Host": f"{HOST}:{PORT}"})
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException):
        return  # the TLS listener drops a plain request unanswered
    finally:
        conn.close()
    raise AssertionError(f"plain HTTP answered {response.status}: {body[:200]!r}")
