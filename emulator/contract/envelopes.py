"""The daemon's `{code, message, data}` envelopes, as Go encodes them.

An error's `message` is itself JSON, `{"message","error_type","args"}`; for a plugin's error that
inner `message` is JSON again, the plugin's error re-encoded with sorted keys
(internal/types/exception, pkg/entities/plugin_entities/event.go).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from emulator.contract.gojson import GoMap, encode_any, encode_string


class ErrorType(StrEnum):
    BAD_REQUEST = "PluginDaemonBadRequestError"
    UNAUTHORIZED = "PluginDaemonUnauthorizedError"
    PLUGIN_NOT_FOUND = "PluginNotFoundError"
    NOT_FOUND = "PluginDaemonNotFoundError"
    UNIQUE_IDENTIFIER = "PluginUniqueIdentifierError"
    PERMISSION_DENIED = "PluginPermissionDeniedError"
    INTERNAL = "PluginDaemonInternalServerError"
    PLUGIN_INVOKE = "PluginInvokeError"
    CONNECTION_CLOSED = "ConnectionClosedError"


CODES: dict[ErrorType, int] = {
    ErrorType.BAD_REQUEST: -400,
    ErrorType.UNAUTHORIZED: -401,
    ErrorType.PLUGIN_NOT_FOUND: -404,
    ErrorType.NOT_FOUND: -404,
    ErrorType.UNIQUE_IDENTIFIER: -400,
    ErrorType.PERMISSION_DENIED: -403,
    ErrorType.INTERNAL: -500,
    ErrorType.PLUGIN_INVOKE: -500,
    ErrorType.CONNECTION_CLOSED: -500,
}

NO_ROUTE = '{"code":"not_found","message":"route not found"}'
TIMEOUT_MESSAGE = "killed by timeout"
"""The daemon's own error when a stream outlives PLUGIN_MAX_EXECUTION_TIMEOUT."""
NO_POLLING_RESULT = "no polling result received from plugin"
"""The daemon's error when a polling session ends without an item."""
"""gin's NoRoute answer: the one envelope whose code is a string."""


def success(data_json: str) -> str:
    """A success envelope around already-encoded data."""
    return '{"code":0,"message":"success","data":' + data_json + "}"


def error(error_type: ErrorType, message: str) -> str:
    inner = '{"message":' + encode_string(message) + ',"error_type":' + encode_string(error_type)
    inner += ',"args":null}'
    return (
        '{"code":' + str(CODES[error_type]) + ',"message":' + encode_string(inner) + ',"data":null}'
    )


def sorted_error(fields: dict[str, Any]) -> str:
    """What parser.MarshalJson makes of a Go map: the error text a stream error carries."""
    return encode_any(GoMap(fields))


def plugin_error(error_type: str, message: str, args: dict[str, Any] | None) -> str:
    """A plugin's `error` frame as the stream's last item: JSON in JSON in JSON."""
    inner = sorted_error({"args": args, "error_type": error_type, "message": message})
    return error(ErrorType.PLUGIN_INVOKE, inner)


def stream_error(error_type: str, message: str) -> str:
    """An error the daemon raises itself inside a stream (no `args` in the inner object)."""
    return error(
        ErrorType.PLUGIN_INVOKE, sorted_error({"error_type": error_type, "message": message})
    )
