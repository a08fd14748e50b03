"""redact_url: what every program prints of a URL that may carry a password."""

import pytest

from logto_m2m.urls import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:3001", "http://127.0.0.1:3001"),
        ("https://admin:s3cret@tenant.logto.app/oidc", "https://***@tenant.logto.app/oidc"),
        ("http://user@host:8000/path?q=1", "http://***@host:8000/path?q=1"),
        ("http://a:b@c@host/", "http://***@host/"),  # the last "@" ends the userinfo
        ("http://user:pw@[::1", "***"),  # not a URL: nothing of it is shown
    ],
)
def test_the_userinfo_is_never_shown(url, shown):
    assert redact_url(url) == shown
