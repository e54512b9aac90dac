"""OAuth routes: pkg/entities/requests/oauth.go and pkg/entities/oauth_entities."""

from __future__ import annotations

from typing import Annotated, Any

from emulator.contract.gotypes import Go, GoStruct


class RequestOAuthGetAuthorizationURL(GoStruct):
    provider: Annotated[str, Go(validate="required")] = ""
    redirect_uri: Annotated[str, Go("RedirectURI", validate="required")] = ""
    system_credentials: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None


class RequestOAuthGetCredentials(GoStruct):
    provider: Annotated[str, Go(validate="required")] = ""
    redirect_uri: Annotated[str, Go("RedirectURI", validate="required")] = ""
    system_credentials: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None
    raw_http_request: Annotated[str, Go("RawHttpRequest", validate="required")] = ""
    """Hex of the callback request the OAuth provider sent to Dify."""


class RequestOAuthRefreshCredentials(GoStruct):
    provider: Annotated[str, Go(validate="required")] = ""
    redirect_uri: Annotated[str, Go("RedirectURI", validate="required")] = ""
    system_credentials: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None
    credentials: Annotated[dict[str, Any] | None, Go(validate="required")] = None


class OAuthGetAuthorizationURLResult(GoStruct):
    authorization_url: Annotated[str, Go("AuthorizationURL")] = ""


class OAuthGetCredentialsResult(GoStruct):
    metadata: Annotated[dict[str, Any] | None, Go(omitempty=True)] = None
    credentials: dict[str, Any] | None = None
    expires_at: int = 0


class OAuthRefreshCredentialsResult(GoStruct):
    credentials: dict[str, Any] | None = None
    expires_at: int = 0
