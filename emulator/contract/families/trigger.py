"""Trigger routes: pkg/entities/requests/trigger.go, requests and responses both."""

from __future__ import annotations

from typing import Annotated, Any

from emulator.contract.gotypes import Go, GoStruct
from emulator.contract.model import Credentials

# requests ---------------------------------------------------------------------------------


class TriggerInvokeEventRequest(Credentials):
    provider: Annotated[str, Go(validate="required")] = ""
    event: Annotated[str, Go(validate="required")] = ""
    raw_http_request: Annotated[str, Go("RawHTTPRequest", validate="required")] = ""
    parameters: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None
    subscription: Annotated[dict[str, Any] | None, Go(validate="required")] = None
    payload: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None


class TriggerValidateProviderCredentialsRequest(Credentials):
    provider: Annotated[str, Go(validate="required")] = ""


class TriggerDispatchEventRequest(Credentials):
    provider: Annotated[str, Go(validate="required")] = ""
    subscription: Annotated[dict[str, Any] | None, Go(validate="required")] = None
    raw_http_request: Annotated[str, Go("RawHTTPRequest", validate="required")] = ""


class TriggerSubscribeRequest(Credentials):
    provider: Annotated[str, Go(validate="required")] = ""
    endpoint: Annotated[str, Go(validate="required")] = ""
    parameters: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None


class TriggerUnsubscribeRequest(Credentials):
    provider: Annotated[str, Go(validate="required")] = ""
    subscription: Annotated[dict[str, Any] | None, Go(validate="required")] = None


class TriggerRefreshRequest(Credentials):
    provider: Annotated[str, Go(validate="required")] = ""
    subscription: Annotated[dict[str, Any] | None, Go(validate="required")] = None


# responses --------------------------------------------------------------------------------


class TriggerInvokeEventResponse(GoStruct):
    variables: dict[str, Any] | None = None
    cancelled: Annotated[bool, Go(validate="omitempty")] = False


class TriggerValidateProviderCredentialsResponse(GoStruct):
    result: bool = False


class TriggerDispatchEventResponse(GoStruct):
    user_id: Annotated[str, Go("UserID", validate="omitempty")] = ""
    events: list[str] | None = None
    payload: Annotated[dict[str, Any] | None, Go(validate="omitempty", omitempty=True)] = None
    response: str = ""


class TriggerSubscribeResponse(GoStruct):
    subscription: dict[str, Any] | None = None


class TriggerUnsubscribeResponse(GoStruct):
    subscription: dict[str, Any] | None = None


class TriggerRefreshResponse(GoStruct):
    subscription: dict[str, Any] | None = None
