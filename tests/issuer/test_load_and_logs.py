"""Many clients at once, and nothing secret in the server's log."""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from joserfc import jwt

from .conftest import ADMIN, MANAGEMENT, SHOPPING, STATS_WORKER

PARALLEL = 200


def test_200_parallel_token_requests(issuer):
    start = threading.Barrier(PARALLEL)

    def request_token(i: int) -> requests.Response:
        start.wait(timeout=30)
        if i % 2:  # half with client_secret_basic, half with client_secret_post; one connection each
            return requests.post(
                issuer.token_url,
                auth=STATS_WORKER,
                timeout=30,
                data={"grant_type": "client_credentials", "resource": SHOPPING, "scope": "read:orders"},
            )
        return requests.post(
            issuer.token_url,
            timeout=30,
            data={
                "grant_type": "client_credentials",
                "resource": SHOPPING,
                "scope": "read:orders",
                "client_id": STATS_WORKER[0],
                "client_secret": STATS_WORKER[1],
            },
        )

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        responses = list(pool.map(request_token, range(PARALLEL)))
    elapsed = time.monotonic() - began

    assert [r.status_code for r in responses] == [200] * PARALLEL
    keys = issuer.jwks()
    jtis = set()
    for response in responses:
        claims = jwt.decode(response.json()["access_token"], keys, algorithms=["ES384"]).claims
        assert claims["scope"] == "read:orders"
        jtis.add(claims["jti"])
    assert len(jtis) == PARALLEL
    print(f"\n{PARALLEL} parallel token requests answered in {elapsed:.2f}s")


def test_secrets_and_tokens_never_reach_the_log(issuer_factory):
    running = issuer_factory()
    secrets = [STATS_WORKER[1], ADMIN[1], "wrong-secret-value-123"]
    token = running.token(STATS_WORKER, MANAGEMENT, "all")
    shopping_token = running.token(ADMIN, SHOPPING, "write:orders")
    requests.post(
        running.token_url,
        auth=(STATS_WORKER[0], "wrong-secret-value-123"),
        timeout=10,
        data={"grant_type": "client_credentials", "resource": SHOPPING},
    )
    requests.post(
        running.token_url,
        timeout=10,
        data={
            "grant_type": "client_credentials",
            "resource": SHOPPING,
            "client_id": ADMIN[0],
            "client_secret": ADMIN[1],
        },
    )
    # A secret sent where it does not belong (the query string) must not be echoed either.
    requests.post(
        f"{running.token_url}?client_secret={ADMIN[1]}",
        auth=ADMIN,
        timeout=10,
        data={"grant_type": "client_credentials", "resource": SHOPPING},
    )
    requests.post(
        running.token_url,
        auth=STATS_WORKER,
        timeout=10,
        headers={"Content-Type": "application/json"},
        data=json.dumps({"grant_type": "client_credentials", "resource": SHOPPING}),
    )
    requests.get(
        f"{running.base_url}/api/users/user-alice", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    requests.get(
        f"{running.base_url}/api/users/user-alice",
        headers={"Authorization": f"Bearer {shopping_token}"},
        timeout=10,
    )  # rejected: logged as such
    requests.patch(
        f"{running.base_url}/api/users/user-bob/custom-data",
        timeout=10,
        headers={"Authorization": f"Bearer {token}"},
        json={"customData": {"shopping": {"n": 1}}},
    )
    running.process.stop()

    log = running.log_text()
    assert "issued access token client_id=m2m-stats-worker" in log  # the log is there, and useful
    assert "token rejected" in log
    basic = base64.b64encode(f"{STATS_WORKER[0]}:{STATS_WORKER[1]}".encode()).decode()
    private_d = json.loads((running.state_dir / "signing-keys.json").read_text())["keys"][0]["d"]
    for forbidden in [
        *secrets,
        basic,
        private_d,
        token,
        shopping_token,
        token.split(".")[2],
        shopping_token.split(".")[1],
    ]:
        assert forbidden not in log
