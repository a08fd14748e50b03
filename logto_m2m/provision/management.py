"""A small client for the parts of Logto's Management API that provisioning uses.

Shapes and status codes are Logto's (packages/core/src/routes in logto-io/logto): lists are paged
with ``page`` and ``page_size`` (at most 100) and say how many items exist in the ``Total-Number``
header; creates answer 200 or 201; a duplicate name answers 422. The token comes from the same
``client_credentials`` client as the stats worker's, and requests go through the project's one
session factory (timeouts, bounded retries of GETs; a POST is never retried, so nothing is
created twice).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import requests

from logto_m2m.http import make_session
from logto_m2m.logto import MANAGEMENT_API_SCOPE, issuer_for
from logto_m2m.urls import redact_url
from stats_worker.token_client import BearerAuth, TokenClient, TokenRequestError

#: Logto's largest page (koa-pagination's maxPageSize).
PAGE_SIZE = 100
#: A guard against a server that keeps answering full pages: far more than any tenant holds.
MAX_PAGES = 1000

Json = dict[str, Any]

OSS_CLOUD_HINT = (
    "on Logto OSS it is https://default.logto.app/api, on Logto Cloud https://{tenant-id}.logto.app/api "
    '(Console: API resources -> "Logto Management API")'
)
BOOTSTRAP_HINT = (
    "in the Logto Console, open the app LOGTO_ADMIN_APP_ID names and assign it the machine-to-machine "
    'role "Logto Management API access" (it holds the Management API permission `all`)'
)


class ProvisionError(Exception):
    """Provisioning cannot go on; the message is one line that names the fix."""


class ManagementApiError(ProvisionError):
    """The Management API refused a request; carries Logto's status and error code."""

    def __init__(self, message: str, *, status: int, code: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ManagementApi:
    """Authenticated calls to ``{endpoint}/api`` as the bootstrap app."""

    def __init__(
        self,
        endpoint: str,
        app_id: str,
        app_secret: str,
        resource: str,
        *,
        session: requests.Session | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.shown = redact_url(self.endpoint)  # for messages: never a password from the URL
        self.resource = resource
        self.session = session or make_session()
        self.tokens = TokenClient(issuer_for(self.endpoint) + "/token", app_id, app_secret)
        self.auth = BearerAuth(self.tokens, resource, MANAGEMENT_API_SCOPE)

    def __repr__(self) -> str:  # no secret in reprs, and so none in tracebacks
        return f"ManagementApi(endpoint={self.shown!r})"

    # -- the token ---------------------------------------------------------------------------

    def authenticate(self) -> None:
        """Get the Management API token now, so a wrong setting fails before any change."""
        try:
            self.tokens.get_token(self.resource, MANAGEMENT_API_SCOPE)
        except TokenRequestError as exc:
            raise ProvisionError(self._token_problem(exc)) from None

    def _token_problem(self, exc: TokenRequestError) -> str:
        if exc.error == "invalid_client":
            return (
                "Logto refused the bootstrap app's credentials (invalid_client): set LOGTO_ADMIN_APP_ID "
                "and LOGTO_ADMIN_APP_SECRET to the App ID and an App secret of your machine-to-machine app"
            )
        if exc.error == "invalid_target":
            return (
                f"LOGTO_MANAGEMENT_API_RESOURCE={self.resource} is not a resource of the tenant at "
                f"{self.shown} (invalid_target): set it to this tenant's Management API indicator; "
                + OSS_CLOUD_HINT
            )
        if exc.error == "no_scope_granted":
            return (
                f"the bootstrap app was granted no Management API permission `all` for {self.resource}: "
                + BOOTSTRAP_HINT
            )
        if exc.error == "invalid_request" and "unrecognized route" in (exc.error_description or ""):
            return (
                f"{self.shown}/oidc/token is not a Logto token endpoint ({exc.error_description}): set "
                "LOGTO_ENDPOINT to the Logto base URL, without /oidc or /api"
            )
        if exc.status is None:
            return (
                f"cannot reach Logto at {self.shown}: check LOGTO_ENDPOINT (the Logto base URL, e.g. "
                "http://localhost:3001 or https://{tenant-id}.logto.app) and that Logto is running"
            )
        if exc.error is None:
            return (
                f"{self.shown}/oidc/token is not a Logto token endpoint (HTTP {exc.status}): check "
                "LOGTO_ENDPOINT (the Logto base URL, without /oidc or /api)"
            )
        return f"Logto refused the bootstrap app's token request: {exc}"

    # -- requests ----------------------------------------------------------------------------

    def url(self, path: str, *ids: str) -> str:
        return self.endpoint + "/api" + path.format(*(quote(value, safe="") for value in ids))

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        where = redact_url(url)  # what messages show: never a password from the URL
        try:
            response = self.session.request(method, url, auth=self.auth, **kwargs)
        except TokenRequestError as exc:  # a token re-fetch after a 401
            raise ProvisionError(self._token_problem(exc)) from None
        except requests.RequestException as exc:
            raise ProvisionError(
                f"{method} {where} failed ({type(exc).__name__}): check LOGTO_ENDPOINT and that Logto is "
                "running, then run again (what was done so far is kept and found again)"
            ) from None
        if response.status_code >= 400:
            raise self._refusal(method, url, response)
        return response

    def _refusal(self, method: str, url: str, response: requests.Response) -> ManagementApiError:
        where = redact_url(url)  # what messages show: never a password from the URL
        status = response.status_code
        body = _json(response)
        code = body.get("code") if isinstance(body, dict) and isinstance(body.get("code"), str) else None
        message = (
            body.get("message") if isinstance(body, dict) and isinstance(body.get("message"), str) else ""
        )
        if code is None:
            text = (
                f"{method} {where} answered HTTP {status} without a Logto error body: LOGTO_ENDPOINT must "
                "be the Logto base URL (its Management API is at {LOGTO_ENDPOINT}/api)"
            )
        elif status == 401:
            text = (
                f"the Management API refused the token ({code}): LOGTO_MANAGEMENT_API_RESOURCE="
                f"{self.resource} must be this tenant's Management API indicator; {OSS_CLOUD_HINT}"
            )
        elif status == 403:
            text = f"the Management API refused the bootstrap app ({code}): {BOOTSTRAP_HINT}"
        else:
            text = f"{method} {where} answered HTTP {status} ({code}: {message})"
        return ManagementApiError(text, status=status, code=code)

    def get_json(self, path: str, *ids: str) -> Any:
        return _json(self.request("GET", self.url(path, *ids)), strict=True)

    def send(self, method: str, path: str, *ids: str, body: Json) -> Any:
        """POST/PATCH ``body``; the answer's JSON (None for Logto's text answers such as "Created")."""
        response = self.request(method, self.url(path, *ids), json=body)
        return _json(response)

    def list_all(self, path: str, *ids: str, **query: str) -> Iterator[Json]:
        """Every item of a paged list, page after page, until ``Total-Number`` items were read."""
        url = self.url(path, *ids)
        where = redact_url(url)  # what messages show: never a password from the URL
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            response = self.request("GET", url, params={**query, "page": page, "page_size": PAGE_SIZE})
            items = _json(response, strict=True)
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise ProvisionError(
                    f"GET {where} did not answer a JSON list: is LOGTO_ENDPOINT a Logto server?"
                )
            yield from items
            seen += len(items)
            total = _total(response)
            if len(items) < PAGE_SIZE or (total is not None and seen >= total):
                return
        raise ProvisionError(f"GET {where} kept answering full pages past {MAX_PAGES * PAGE_SIZE} items")


def _total(response: requests.Response) -> int | None:
    value = response.headers.get("Total-Number", "")
    return int(value) if value.isdigit() else None


def _json(response: requests.Response, *, strict: bool = False) -> Any:
    try:
        return response.json()
    except ValueError:
        if strict:
            raise ProvisionError(
                f"{response.request.method} {redact_url(response.url)} did not answer JSON: "
                "is LOGTO_ENDPOINT a Logto server?"
            ) from None
        return None
