"""The demo's narration of a request on the wire: secrets hidden, whatever form requests holds it in."""

from __future__ import annotations

import base64

import requests

from demo.narration import request_lines

TOKEN_URL = "http://127.0.0.1:3001/oidc/token"


def test_a_form_request_is_shown_field_by_field_with_the_secret_hidden():
    credentials = base64.b64encode(b"worker-app:s3cret-value").decode()
    request = requests.Request(
        "POST",
        TOKEN_URL,
        headers={"Authorization": f"Basic {credentials}"},
        data={"grant_type": "client_credentials", "resource": "https://shopping.api"},
    ).prepare()
    lines = request_lines(request)
    assert lines[0] == "-> POST /oidc/token HTTP/1.1"
    assert "   Authorization: Basic base64(worker-app:<app secret, not shown>)" in lines
    assert "    grant_type=client_credentials" in lines
    assert "s3cret" not in "\n".join(lines)


def test_bytes_headers_are_shown_as_text_and_a_streamed_body_is_not_shown():
    # requests accepts header values as bytes and a body as an iterator (sent chunked).
    credentials = base64.b64encode(b"worker-app:s3cret-value")
    request = requests.Request(
        "POST",
        TOKEN_URL,
        headers={
            "Authorization": b"Basic " + credentials,
            "Content-Type": b"application/x-www-form-urlencoded",
        },
        data=iter([b"grant_type=client_credentials"]),
    ).prepare()
    lines = request_lines(request)
    assert lines == [
        "-> POST /oidc/token HTTP/1.1",
        "   Host: 127.0.0.1:3001",
        "   Authorization: Basic base64(worker-app:<app secret, not shown>)",
        "   Content-Type: application/x-www-form-urlencoded",
    ]
