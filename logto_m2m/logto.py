"""Facts about Logto's URLs shared by every side (see the README, "Use with Logto Cloud / Logto OSS")."""

from __future__ import annotations

#: Logto OSS's Management API indicator; on Logto Cloud it is https://{tenant-id}.logto.app/api.
OSS_MANAGEMENT_API_RESOURCE = "https://default.logto.app/api"
#: The one scope Logto's Management API knows (full admin: grant it only to apps that need it).
MANAGEMENT_API_SCOPE = "all"


def issuer_for(endpoint: str) -> str:
    """Logto's issuer for an endpoint: ``{ENDPOINT}/oidc`` (no trailing slash)."""
    return endpoint.rstrip("/") + "/oidc"


def discovery_url(issuer: str) -> str:
    """Where OpenID Connect discovery lives for an issuer."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"
