"""A Management API body over 1 MiB is refused with 413 whether its size is announced
(Content-Length) or only found while reading it (chunked), through the real server."""

from __future__ import annotations

import json

import pytest
import requests

from .conftest import MANAGEMENT, STATS_WORKER

LIMIT = 1024 * 1024


def _big_body() -> bytes:
    body = json.dumps({"customData": {"blob": "x" * (LIMIT + 1024)}}).encode()
    assert len(body) > LIMIT
    return body


def _chunks(data: bytes, size: int = 64 * 1024):
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture(scope="module")
def headers(issuer):
    token = issuer.token(STATS_WORKER, MANAGEMENT, "all")
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "path"), [("patch", "/users/user-alice/custom-data"), ("post", "/resources")]
)
def test_chunked_and_announced_bodies_over_the_limit_are_both_413(issuer, headers, method, path):
    url = f"{issuer.base_url}/api{path}"
    body = _big_body()
    announced = requests.request(method, url, data=body, headers=headers, timeout=30)
    chunked = requests.request(method, url, data=_chunks(body), headers=headers, timeout=30)
    assert chunked.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in chunked.request.headers
    assert announced.status_code == chunked.status_code == 413
    assert (
        announced.json()
        == chunked.json()
        == {"code": "request.general", "message": "Request error occurred."}
    )
    # Nothing of the refused body was stored.
    data = requests.get(f"{issuer.base_url}/api/users/user-alice/custom-data", headers=headers, timeout=10)
    assert "blob" not in data.json()


def test_a_chunked_body_of_exactly_the_limit_is_read_whole(issuer, headers):
    frame = len(json.dumps({"customData": {"chunked": ""}}))
    value = "y" * (LIMIT - frame)
    body = json.dumps({"customData": {"chunked": value}}).encode()
    assert len(body) == LIMIT
    response = requests.patch(
        f"{issuer.base_url}/api/users/user-bob/custom-data", data=_chunks(body), headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text[:200]
    assert response.json()["chunked"] == value
