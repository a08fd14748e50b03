"""A second ``local-issuer`` on a port that is already taken changes nothing and says why, at once."""

from __future__ import annotations

import subprocess
import time

from tests.issuer.conftest import start_issuer
from tests.support import clean_env, run_script


def run_issuer(state_dir, port: int, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = run_script(
        "local-issuer",
        "--port",
        str(port),
        "--state-dir",
        str(state_dir),
        *args,
        env=clean_env(),
        cwd=state_dir.parent,
    )
    return result, time.monotonic() - started


def test_rotate_key_next_to_a_running_issuer_leaves_its_keys_alone(tmp_path):
    state = tmp_path / "issuer"
    issuer = start_issuer(state)
    try:
        key_file = state / "signing-keys.json"
        before = key_file.read_bytes()
        signing_kid = issuer.verify(issuer.token()).header["kid"]
        for _ in range(2):  # twice used to drop the key the running issuer signs with
            result, took = run_issuer(state, issuer.port, "--rotate-key")
            assert result.returncode == 1, result.stdout + result.stderr
            assert result.stderr.strip().splitlines() == [
                f"local-issuer: 127.0.0.1:{issuer.port} is in use: stop the running issuer first, "
                "then start it with --rotate-key"
            ]
            assert took < 4, f"{took:.1f}s: gunicorn retried the bind"
            assert key_file.read_bytes() == before
        # The running issuer is untouched: it still signs with its key, and that key still verifies.
        token = issuer.token()
        assert issuer.verify(token).header["kid"] == signing_kid
        assert [key.kid for key in issuer.jwks().keys] == [signing_kid]
    finally:
        issuer.process.stop()
    # Once it is stopped, the rotation goes through.
    rotated = start_issuer(state, "--rotate-key", port=issuer.port)
    try:
        assert [key.kid for key in rotated.jwks().keys][1:] == [signing_kid]
    finally:
        rotated.process.stop()


def test_a_first_start_on_a_taken_port_creates_no_state(tmp_path):
    issuer = start_issuer(tmp_path / "running")
    try:
        state = tmp_path / "second"
        result, took = run_issuer(state, issuer.port)
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"local-issuer: 127.0.0.1:{issuer.port} is in use: stop what listens "
            "there (another local-issuer?) or choose another --port"
        )
        assert took < 4
        assert not state.exists()
    finally:
        issuer.process.stop()


def test_the_issuer_opens_no_gunicorn_control_socket(tmp_path):
    # gunicorn's default control socket is one path per user (~/.gunicorn/gunicorn.ctl): every
    # server started takes it over from the previous one, and the first to stop deletes it.
    home = tmp_path / "home"
    home.mkdir()
    issuer = start_issuer(tmp_path / "issuer", env={"HOME": str(home), "XDG_RUNTIME_DIR": ""})
    try:
        assert issuer.token()
    finally:
        issuer.process.stop()
    assert not (home / ".gunicorn").exists()
    assert "Control socket" not in issuer.log_text()
