"""The OIDC endpoints under ``{endpoint}/oidc``: discovery, the key set, the token endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app

from .errors import json_response

if TYPE_CHECKING:
    from . import LocalIssuer

bp = Blueprint("oidc", __name__, url_prefix="/oidc")


def _issuer() -> LocalIssuer:
    issuer: LocalIssuer = current_app.extensions["local_issuer"]
    return issuer


def metadata(issuer: str) -> dict[str, Any]:
    """What this issuer serves, in OpenID Connect Discovery / RFC 8414 terms.

    Only what is really served is listed: client_credentials at the token endpoint, with the two
    client authentication methods Logto's M2M apps use.
    """
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks",
        "token_endpoint": f"{issuer}/token",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        # No authorization endpoint: nothing is issued from one.
        "response_types_supported": [],
    }


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
def discovery() -> Response:
    return json_response(200, metadata(_issuer().issuer), {"Access-Control-Allow-Origin": "*"})


@bp.get("/jwks")
def jwks() -> Response:
    # Caching (and refetching on an unknown kid) is the client's job whatever the header says: Logto
    # OSS v1.37.1 sends no Cache-Control here at all, only an ETag (tests/logto_captures/jwks.headers);
    # later versions add "no-cache, max-age=0, must-revalidate" (koa-jwks-cache-control). "no-cache"
    # keeps a cache between the two from serving keys it has not revalidated.
    response = json_response(
        200, _issuer().keys.public_jwks(), {"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"}
    )
    response.content_type = "application/jwk-set+json; charset=utf-8"
    return response


@bp.post("/token")
def token() -> Response:
    return _issuer().oauth.create_token_response()
