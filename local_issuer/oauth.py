"""The token endpoint: Authlib's ``AuthorizationServer`` + ``ClientCredentialsGrant``, made to
answer every request the way Logto (node-oidc-provider underneath) does.

Order of checks, as in oidc-provider's token action: parse the body, authenticate the client
(exactly one mechanism: ``client_secret_basic`` or ``client_secret_post``), require a supported
``grant_type``, then the grant's own checks (RFC 8707 ``resource``, scopes).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from typing import Any, cast
from urllib.parse import parse_qsl, unquote_plus

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    OAuth2Payload,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from flask import Request, Response
from flask import request as flask_request
from werkzeug.datastructures import MultiDict

from .bodies import BodyCut, BodyTooLarge, read_capped
from .errors import InvalidTargetError, json_response, oidc_error_body, safe_description
from .keys import SigningKeys
from .tenant import ApplicationRecord, ResourceRecord, Tenant
from .tokens import issue_access_token

log = logging.getLogger(__name__)

#: node-oidc-provider's body limit on its endpoints.
MAX_BODY_BYTES = 56 * 1024
MAX_PARAMETERS = 100
#: The only parameter that may repeat (RFC 8707); Logto then answers with its own error.
REPEATABLE = frozenset({"resource"})
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
TOKEN_HEADERS = {"Cache-Control": "no-store"}


def _unparsable() -> InvalidRequestError:
    return InvalidRequestError("failed to parse the request body")


def read_token_parameters(request: Request) -> MultiDict[str, str]:
    """The POST body's parameters (form or, as Logto also accepts, JSON); the query string is ignored."""
    try:
        raw = read_capped(request, MAX_BODY_BYTES)
    except (BodyTooLarge, BodyCut):
        raise _unparsable() from None
    if not raw:
        return MultiDict()
    if request.mimetype not in ("application/x-www-form-urlencoded", "application/json"):
        raise InvalidRequestError(
            "only application/x-www-form-urlencoded or application/json "
            "content-type bodies are supported on POST /token"
        )
    pairs: list[tuple[str, str]]
    try:
        text = raw.decode("utf-8")
        if request.mimetype == "application/json":
            pairs = _json_pairs(json.loads(text))
        else:
            # Strict UTF-8, also inside %-escapes; empty values count as absent (oidc-provider).
            pairs = parse_qsl(text, errors="strict", max_num_fields=MAX_PARAMETERS)
    except (UnicodeDecodeError, ValueError):
        raise _unparsable() from None
    params = MultiDict(pairs)
    for name, values in params.lists():
        if len(values) > 1 and name not in REPEATABLE:
            raise InvalidRequestError(f"'{safe_description(name, 40)}' parameter must not be provided twice")
    return params


def _json_pairs(data: object) -> list[tuple[str, str]]:
    if not isinstance(data, dict) or len(data) > MAX_PARAMETERS:
        raise ValueError("not an object")
    pairs: list[tuple[str, str]] = []
    for name, value in data.items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str) for item in values):
            raise ValueError("parameter values must be strings")
        for item in values:
            item.encode("utf-8")  # a lone surrogate ("\ud800") raises here: not a valid parameter
        pairs.extend((name, item) for item in values if item)
    return pairs


def read_basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from ``Authorization: Basic``, decoded per RFC 6749 section 2.3.1."""
    if not header:
        return None
    parts = header.split(" ")
    if len(parts) != 2 or parts[0].lower() != "basic":
        raise InvalidRequestError("invalid authorization header value format")
    try:
        decoded = base64.b64decode(parts[1], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidRequestError("invalid authorization header value format") from None
    if ":" not in decoded:
        raise InvalidRequestError("invalid authorization header value format")
    client_id, secret = decoded.split(":", 1)
    try:
        # Both halves are form-encoded before base64 (RFC 6749 section 2.3.1).
        return unquote_plus(client_id, errors="strict"), unquote_plus(secret, errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequestError(
            "client_id and client_secret in the authorization header are not properly encoded"
        ) from None


class BodyPayload(OAuth2Payload):
    def __init__(self, params: MultiDict[str, str]) -> None:
        self._params = params

    @property
    def data(self) -> MultiDict[str, str]:
        return self._params

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        values: defaultdict[str, list[str]] = defaultdict(list)
        for name, items in self._params.lists():
            values[name].extend(items)
        return values


class TokenRequest(OAuth2Request):
    """A token request read from the POST body only (Logto ignores the query string there)."""

    payload: BodyPayload
    #: Set by the grant once the request is validated.
    resource: ResourceRecord
    granted_scopes: list[str]

    def __init__(self, request: Request) -> None:
        # OAuth2Request.__init__ is skipped on purpose: its https-only check would refuse the plain
        # HTTP that Logto OSS itself serves on in local setups (http://localhost:3001, compose hosts).
        self.method = request.method
        self.uri = request.url
        self.headers = request.headers  # type: ignore[assignment]  # werkzeug's Headers, a mapping in all but name
        self._body = None
        self.client = None
        self.auth_method = None
        self.user = None
        self.authorization_code = None
        self.refresh_token = None
        self.credential = None
        self._scope = None
        self.has_authorization_header = bool(request.headers.get("Authorization"))
        self.payload = BodyPayload(MultiDict())
        self.basic_credentials: tuple[str, str] | None = None

    def read(self, request: Request) -> None:
        """Parse body and credentials; raises ``InvalidRequestError`` for malformed input."""
        self.payload = BodyPayload(read_token_parameters(request))
        self.basic_credentials = read_basic_credentials(request.headers.get("Authorization"))

    @property
    def form(self) -> MultiDict[str, str]:
        return self.payload.data

    @property
    def args(self) -> MultiDict[str, str | None]:
        return MultiDict()


class AppClient(ClientMixin):
    """A machine-to-machine application of the tenant, as Authlib sees a client."""

    def __init__(self, app: ApplicationRecord) -> None:
        self.app = app

    def get_client_id(self) -> str:
        return self.app.id

    def check_client_secret(self, client_secret: str) -> bool:
        return self.app.check_secret(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in CLIENT_AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope: Collection[str] | str) -> str:
        return scope if isinstance(scope, str) else " ".join(scope)


#: How the server looks a client up by id (its ``_find_client``).
QueryClient = Callable[[str], "AppClient | None"]


def _authenticate(query_client: QueryClient, client_id: str | None, secret: str | None) -> AppClient:
    client = query_client(client_id) if client_id else None
    if client is None:
        raise InvalidClientError(description=f"invalid client {safe_description(client_id or '')}")
    if not secret or not client.check_client_secret(secret):
        raise InvalidClientError(status_code=401, description="client authentication failed")
    return client


def authenticate_client_secret_basic(query_client: QueryClient, request: TokenRequest) -> AppClient:
    client_id, secret = request.basic_credentials or (None, None)  # chosen only when they were sent
    return _authenticate(query_client, client_id, secret)


def authenticate_client_secret_post(query_client: QueryClient, request: TokenRequest) -> AppClient:
    return _authenticate(
        query_client, request.payload.data.get("client_id"), request.payload.data.get("client_secret")
    )


class LogtoClientCredentialsGrant(ClientCredentialsGrant):
    """``client_credentials`` with Logto's RFC 8707 resource rules and silent scope dropping."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    request: TokenRequest

    def authenticate_token_endpoint_client(self) -> AppClient:
        # Already authenticated by the server before the grant was chosen (oidc-provider's order).
        return cast(AppClient, self.request.client)  # set by the server, always an AppClient

    def validate_token_request(self) -> None:
        super().validate_token_request()
        data = self.request.payload.datalist
        if data.get("organization_id"):
            raise InvalidRequestError("organization tokens are not supported by the local issuer")
        # Logto's checkResource looks each indicator up first (an unknown one wins), then the
        # grant insists on exactly one distinct resource.
        indicators = list(dict.fromkeys(data.get("resource", [])))
        resources = [self.server.tenant.resource_by_indicator(indicator) for indicator in indicators]
        if None in resources:
            raise InvalidTargetError("resource indicator is missing, or unknown")
        if not resources:
            raise InvalidTargetError("both `resource` and `organization_id` are not provided")
        if len(resources) > 1:
            raise InvalidTargetError(
                "only a single resource indicator value is supported for this grant type"
            )
        resource = cast(ResourceRecord, resources[0])  # None was refused above
        held = self.server.tenant.scopes_held(self.client.app, resource.indicator)
        # RFC 6749 section 3.3: scopes are separated by single spaces (Logto splits on " " too).
        requested = list(dict.fromkeys(filter(None, (self.request.payload.scope or "").split(" "))))
        # Granted = requested AND held by one of the app's M2M roles; the rest is dropped silently.
        self.request.resource = resource
        self.request.granted_scopes = [scope for scope in requested if scope in held]

    def create_token_response(self) -> tuple[int, dict[str, Any], Mapping[str, str]]:  # type: ignore[override]  # Authlib passes the body on as a dict, whatever its stubs say
        resource = self.request.resource
        token = issue_access_token(
            self.server.keys,
            issuer=self.server.issuer,
            client_id=self.client.get_client_id(),
            audience=resource.indicator,
            scopes=self.request.granted_scopes,
            ttl=resource.access_token_ttl,
        )
        log.info(
            "issued access token client_id=%s aud=%s scope=%r",
            self.client.get_client_id(),
            resource.indicator,
            token.scope or "",
        )
        return 200, token.response_body(), TOKEN_HEADERS


class LocalAuthorizationServer(AuthorizationServer):
    """Authlib's Flask authorization server with Logto's request handling and error bodies."""

    def __init__(self, tenant: Tenant, keys: SigningKeys, issuer: str) -> None:
        super().__init__()
        self.tenant = tenant
        self.keys = keys
        self.issuer = issuer
        self._query_client = self._find_client
        self._save_token = lambda token, request: None  # JWTs are self-contained: nothing to store
        self.register_client_auth_method("client_secret_basic", authenticate_client_secret_basic)
        self.register_client_auth_method("client_secret_post", authenticate_client_secret_post)
        self.register_grant(LogtoClientCredentialsGrant)

    def _find_client(self, client_id: str) -> AppClient | None:
        app = self.tenant.client(client_id)
        return AppClient(app) if app else None

    def create_oauth2_request(self, request: object) -> TokenRequest:  # type: ignore[override]  # our TokenRequest: body only
        return TokenRequest(flask_request)

    def create_token_response(self, request: object = None) -> Response:  # type: ignore[override]  # a Flask response
        oauth_request = self.create_oauth2_request(request)
        try:
            oauth_request.read(flask_request)
            oauth_request.client = self.authenticate_client(oauth_request, [self._auth_method(oauth_request)])
            grant_type = oauth_request.payload.grant_type
            if not grant_type:
                raise InvalidRequestError("missing required parameter 'grant_type'")
            try:
                # The only grant registered, so the only one get_token_grant can return.
                grant = cast(LogtoClientCredentialsGrant, self.get_token_grant(oauth_request))
            except UnsupportedGrantTypeError:
                raise OAuth2Error(
                    error="unsupported_grant_type", description="unsupported grant_type requested"
                ) from None
            grant.validate_token_request()
            return self.handle_response(*grant.create_token_response())
        except OAuth2Error as error:
            return self.handle_error_response(oauth_request, error)

    @staticmethod
    def _auth_method(request: TokenRequest) -> str:
        data = request.payload.data
        in_body = "client_secret" in data or "client_id" in data
        if request.basic_credentials and "client_secret" in data:
            raise InvalidRequestError("client authentication must only be provided using one mechanism")
        if request.basic_credentials:
            client_id = data.get("client_id")
            if client_id is not None and client_id != request.basic_credentials[0]:
                raise InvalidRequestError("mismatch in body and authorization client ids")
            return "client_secret_basic"
        if in_body:
            return "client_secret_post"
        raise InvalidRequestError("no client authentication mechanism provided")

    def handle_response(self, status_code: int, payload: Any, headers: Mapping[str, str]) -> Response:
        return json_response(status_code, payload, dict(headers))

    def handle_error_response(self, request: object, error: OAuth2Error) -> Response:
        status = error.status_code or 400
        headers = dict(TOKEN_HEADERS)
        if (
            error.error == "invalid_client"
            and status == 401
            and getattr(request, "has_authorization_header", False)
        ):
            # RFC 6749 section 5.2: 401 with the scheme the client tried; realm as Logto sends it.
            headers["WWW-Authenticate"] = (
                f'Basic realm="{self.issuer}", error="invalid_client", '
                f'error_description="{error.get_error_description()}"'
            )
        error_code = error.error or "invalid_request"  # every error raised here names its code
        return json_response(status, oidc_error_body(error_code, error.get_error_description()), headers)
