"""The packaged demo config (public secrets) stays on loopback unless a flag says otherwise, and no
client can forge, colour or bloat a line of the issuer's log."""

from __future__ import annotations

import subprocess
import time

import pytest
import requests

from local_issuer.cli import is_loopback
from local_issuer.config import bootstrap_config_path
from local_issuer.logsafe import loggable
from tests.support import clean_env, free_port, run_script, script

from .conftest import MANAGEMENT, STATS_WORKER


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104 -- the case under test
        ("::", False),
        ("192.168.1.5", False),
        ("issuer.example", False),
    ],
)
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def _run(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_script(
        "local-issuer",
        "--port",
        str(free_port()),
        "--state-dir",
        str(tmp_path / "state"),
        *args,
        env=clean_env(**env),
    )


@pytest.mark.parametrize("config", [(), ("--config", str(bootstrap_config_path()))])
def test_packaged_config_on_a_network_address_is_refused(tmp_path, config):
    result = _run(tmp_path, "--host", "0.0.0.0", *config)  # noqa: S104 -- the case under test
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("local-issuer: refusing to serve the packaged demo config on 0.0.0.0")
    assert "--allow-demo-config-on-network" in lines[0]
    assert not (tmp_path / "state").exists()  # refused before any state was made


def _start_and_stop(tmp_path, *args: str, **env: str) -> tuple[str, int]:
    port = free_port()
    log_path = tmp_path / "issuer.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [script("local-issuer"), "--port", str(port), "--state-dir", str(tmp_path / "state"), *args],
            env=clean_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/oidc/jwks", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.05)
    finally:
        proc.terminate()
        code = proc.wait(15)
    return log_path.read_text(), code


@pytest.mark.parametrize(
    ("args", "env"),
    [(("--allow-demo-config-on-network",), {}), ((), {"LOCAL_ISSUER_ALLOW_DEMO_CONFIG_ON_NETWORK": "true"})],
)
def test_the_flag_allows_it_with_a_warning(tmp_path, args, env):
    log, code = _start_and_stop(tmp_path, "--host", "0.0.0.0", *args, **env)  # noqa: S104 -- under test
    assert code == 0, log
    assert "Listening at: " in log or "LOCAL DEVELOPMENT ISSUER" in log
    assert "WARNING: the packaged demo config (public secrets) is served on 0.0.0.0:" in log


def test_own_config_on_loopback_gets_no_warning(tmp_path):
    log, code = _start_and_stop(tmp_path)
    assert code == 0, log
    assert "LOCAL DEVELOPMENT ISSUER" in log
    assert "public secrets" not in log


def test_loggable_escapes_and_caps():
    assert loggable("a\nb\r\x1b[31mc\x7f\u2028") == "a\\x0ab\\x0d\\x1b[31mc\\x7f\\u2028"
    capped = loggable("k" * 200_000)
    assert capped == "k" * 256 + "...(+199744 chars)"


def test_clients_cannot_forge_colour_or_bloat_log_lines(issuer_factory):
    issuer = issuer_factory()
    token = issuer.token(STATS_WORKER, MANAGEMENT, "all")
    auth = {"Authorization": f"Bearer {token}"}
    base = issuer.base_url
    requests.get(f"{base}/api/users/x%0a%5B2026-01-01%5D%20FORGED%20admin%20login", headers=auth, timeout=10)
    requests.get(f"{base}/oidc/nope%0d%0aFORGED2", timeout=10)
    requests.get(f"{base}/api/users/%1b%5B2J%1b%5B31mred", headers=auth, timeout=10)
    requests.get(f"{base}/api/users/" + "p" * 6000, headers=auth, timeout=10)
    big_key = "z" * 200_000  # sorts after the other key, which is logged first
    patched = requests.patch(
        f"{base}/api/users/user-alice/custom-data",
        json={"customData": {big_key: 1, "line\nbreak": 2}},
        headers=auth,
        timeout=10,
    )
    assert patched.status_code == 200
    issuer.process.stop()

    log = issuer.log_text()
    assert "custom data of user-alice updated" in log  # the lines are there...
    assert "FORGED" in log and "\\x0a" in log and "\\x1b" in log  # ...with the bytes escaped
    for line in log.splitlines():
        assert not line.startswith(("FORGED", "[2026-01-01] FORGED")), line
        assert "\x1b" not in line and "\r" not in line
        assert len(line) < 2000, f"a {len(line)}-character log line"
    assert "line\\x0abreak" in log
