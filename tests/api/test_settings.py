"""The API's settings: each bad value stops it with one message naming the variable."""

from __future__ import annotations

import pytest

from logto_m2m.settings import SettingsError, load_settings
from shopping_api.config import ApiSettings


def load(**values):
    return load_settings(ApiSettings, env_file=None, **values)


def test_defaults_follow_logto():
    settings = load()
    assert settings.logto_issuer == "http://127.0.0.1:3001/oidc"
    assert settings.shopping_api_resource == "https://shopping.api"
    assert settings.token_algorithms == ("ES384", "ES256", "ES512", "RS256", "PS256")


def test_issuer_is_derived_from_the_endpoint_and_kept_exact_when_set():
    assert load(logto_endpoint="https://t1.logto.app/").logto_issuer == "https://t1.logto.app/oidc"
    # A trailing slash in LOGTO_ISSUER is kept: "iss" is compared exactly, and the error says so.
    assert load(logto_issuer="http://localhost:3001/oidc/").logto_issuer == "http://localhost:3001/oidc/"


def test_algorithms_are_read_space_or_comma_separated(monkeypatch):
    monkeypatch.setenv("TOKEN_ALGORITHMS", "ES384, RS256")
    assert load().token_algorithms == ("ES384", "RS256")


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("logto_endpoint", "localhost:3001", "LOGTO_ENDPOINT: must be an http:// or https:// URL"),
        ("logto_issuer", "http://x/oidc?tenant=1", "LOGTO_ISSUER: must be an http:// or https:// URL"),
        ("logto_jwks_uri", "file:///etc/jwks.json", "LOGTO_JWKS_URI: must be an http:// or https:// URL"),
        (
            "shopping_api_resource",
            "https://shopping.api#v1",
            "SHOPPING_API_RESOURCE: must be the API identifier",
        ),
        (
            "shopping_api_resource",
            " https://shopping.api",
            "SHOPPING_API_RESOURCE: must be the API identifier",
        ),
        ("token_algorithms", "HS256", "TOKEN_ALGORITHMS: choose from"),
        ("token_algorithms", "none", "TOKEN_ALGORITHMS: choose from"),
        ("token_leeway_seconds", "3600", "TOKEN_LEEWAY_SECONDS:"),
        ("jwks_cache_ttl_seconds", "0", "JWKS_CACHE_TTL_SECONDS:"),
        ("token_cache_size", "-1", "TOKEN_CACHE_SIZE:"),
    ],
)
def test_bad_values_are_named(monkeypatch, name, value, problem):
    monkeypatch.setenv(name.upper(), value)
    with pytest.raises(SettingsError) as excinfo:
        load()
    assert str(excinfo.value).startswith(problem)
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize("value", [5, None, {"ES256": True}])
def test_algorithms_given_in_code_as_neither_text_nor_a_list_are_named(value):
    # Values passed to create_app() skip the environment's string parsing.
    with pytest.raises(SettingsError, match=r"^TOKEN_ALGORITHMS: choose from"):
        load(token_algorithms=value)
