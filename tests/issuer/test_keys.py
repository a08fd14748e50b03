"""The signing key: created once with owner-only permissions, kept across restarts, rotated on demand."""

from __future__ import annotations

import json
import stat

import requests
from joserfc import jwt

from tests.support import clean_env, free_port, run_script

from .conftest import MANAGEMENT


def test_key_file_is_private_and_holds_the_published_key(issuer_factory, tmp_path):
    running = issuer_factory()
    key_file = tmp_path / "state" / "signing-keys.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = json.loads(key_file.read_text())["keys"]
    assert len(private) == 1 and "d" in private[0]
    assert [k.kid for k in running.jwks().keys] == [private[0]["kid"]]


def test_restart_keeps_tokens_valid(issuer_factory, tmp_path):
    first = issuer_factory()
    token = first.token()
    management_token = first.token(resource=MANAGEMENT, scope="all")
    first.process.stop()

    second = issuer_factory(port=first.port)
    assert second.verify(token).claims["aud"] == "https://shopping.api"
    # The Management API, which checks signatures with the reloaded key, accepts the old token too.
    response = requests.get(
        f"{second.base_url}/api/users/user-alice",
        headers={"Authorization": f"Bearer {management_token}"},
        timeout=10,
    )
    assert response.status_code == 200


def test_rotation_publishes_new_key_first_and_keeps_the_old_one(issuer_factory):
    first = issuer_factory()
    (old_kid,) = [key.kid for key in first.jwks().keys]
    old_token = first.token()
    first.process.stop()

    rotated = issuer_factory("--rotate-key")
    kids = [key.kid for key in rotated.jwks().keys]
    assert len(kids) == 2 and kids[1] == old_kid and kids[0] != old_kid
    new_token = rotated.token()
    assert jwt.decode(new_token, rotated.jwks(), algorithms=["ES384"]).header["kid"] == kids[0]
    assert rotated.verify(old_token).header["kid"] == old_kid  # still verifies after rotation
    assert "rotated the signing key" in rotated.log_text()


def test_second_rotation_drops_the_oldest_key(issuer_factory):
    kids = [key.kid for key in issuer_factory().jwks().keys]
    for _ in range(2):
        running = issuer_factory("--rotate-key")
        kids = [running.jwks().keys[0].kid, *kids]
        running.process.stop()
    final = issuer_factory()
    assert [key.kid for key in final.jwks().keys] == kids[:2]


def test_unusable_key_file_stops_the_start(tmp_path):
    key_file = tmp_path / "broken.json"
    key_file.write_text("{not json")
    result = run_script(
        "local-issuer",
        "--key-file",
        str(key_file),
        "--port",
        str(free_port()),
        env=clean_env(),
        cwd=tmp_path,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"local-issuer: {key_file}: not a usable private JWKS (JSONDecodeError); "
        "move it away to generate a new key"
    ]


def test_unwritable_state_dir_stops_the_start(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_script(
        "local-issuer",
        "--state-dir",
        str(blocker / "state"),
        "--port",
        str(free_port()),
        env=clean_env(),
        cwd=tmp_path,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        f"local-issuer: {blocker / 'state' / 'signing-keys.json'}: cannot be written ("
    )
    assert "Traceback" not in result.stderr
