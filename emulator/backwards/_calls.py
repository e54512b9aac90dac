"""One call back into Dify: where it comes from, what a handler sees, what became of it, and
the `backwards_response` lines that answer it."""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from emulator.contract.gojson import GoMap, encode_any, encode_string

logger = logging.getLogger("emulator.backwards")

Send = Callable[[str], None]
"""Writes one daemon->plugin line (a `backwards_response` envelope) to the plugin."""

Handler = Callable[["BackwardsCall"], Any]
"""Answers a call in Dify's place. Its return value becomes the answer:
a mapping is one `response` (message "struct"); bytes are `{"data": <hex>}`, as a storage
`get` answers; any other iterable gives one "stream" `response` per mapping; None gives no
`response`. Whatever it raises becomes the `error` event."""


@dataclass(frozen=True)
class Caller:
    """The session a call comes from, as the daemon knows it."""

    session_id: str
    tenant_id: str
    user_id: str
    access_type: str
    plugin_id: str
    plugin_directory: Path | None = None
    """Where the plugin's manifest.yaml is read for its declared permissions."""
    conversation_id: str | None = None
    message_id: str | None = None
    app_id: str | None = None
    endpoint_id: str | None = None
    context: Any = None
    traceparent: str = ""
    """What the daemon sends Dify as `traceparent` for this session's calls (see
    `session_traceparent`); empty: a new trace per call."""


@dataclass(frozen=True)
class BackwardsCall:
    """One call back into Dify, as a handler receives it."""

    invoke_type: str
    request_id: str
    request: dict[str, Any]
    """The plugin's request, with the daemon's additions: tenant_id, user_id and type."""
    caller: Caller

    @property
    def tenant_id(self) -> str:
        return self.caller.tenant_id

    @property
    def plugin_id(self) -> str:
        return self.caller.plugin_id


ANSWERERS = ("handler", "storage", "forward", "refused", "denied", "invalid", "unanswered")
"""What can answer a call: a test's handler, the emulator's storage, Dify's inner API, or the
daemon's refusal of a model session, of a missing permission, of a request its types refuse,
or of a call nothing was set up to answer."""


@dataclass
class CallRecord:
    """What became of one call, for the journal; filled in while the call runs."""

    invoke_type: str
    request_id: str
    request: dict[str, Any]
    answered_by: str = ""
    """One of ANSWERERS."""
    responses: int = 0
    error: str | None = None
    ended: bool = False
    handler_misuse: str | None = None
    """Set when a test's handler returned what no answer can be made of: a bug in the test."""

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.invoke_type,
            "backwards_request_id": self.request_id,
            "request": self.request,
            "answered_by": self.answered_by,
            "responses": self.responses,
            "error": self.error,
            "ended": self.ended,
        }


class Answer:
    """Writes one call's `backwards_response` lines to the plugin, and records them."""

    def __init__(self, caller: Caller, request_id: str, send: Send, record: CallRecord) -> None:
        self.caller = caller
        self.request_id = request_id
        self.record = record
        self._send = send

    def response(self, message: str, data: Any) -> None:
        """Answer with plain JSON values (maps encode with sorted keys, as Go's do)."""
        self.response_json(message, encode_any(go_map(data)))

    def response_json(self, message: str, data_json: str) -> None:
        """Answer with data already encoded as the daemon encodes it."""
        self.record.responses += 1
        self._write("response", message, data_json)

    def error(self, message: str) -> None:
        self.record.error = message
        self._write("error", message, "null")

    def end(self) -> None:
        self.record.ended = True
        self._write("end", "", "null")

    def fail(self, message: str) -> None:
        self.error(message)
        self.end()

    def _write(self, event: str, message: str, data_json: str) -> None:
        line = response_line(self.caller, self.request_id, event, message, data_json)
        try:
            self._send(line)
        except Exception:
            logger.exception("could not deliver a backwards_response to %s", self.caller.plugin_id)


def response_line(caller: Caller, request_id: str, event: str, message: str, data_json: str) -> str:
    """The daemon's `backwards_response` line: the session envelope around one event."""
    inner = (
        f'{{"backwards_request_id":{encode_string(request_id)},"event":{encode_string(event)},'
        f'"message":{encode_string(message)},"data":{data_json}}}'
    )
    envelope = [
        f'"session_id":{encode_string(caller.session_id)}',
        f'"conversation_id":{encode_any(caller.conversation_id)}',
        f'"message_id":{encode_any(caller.message_id)}',
        f'"app_id":{encode_any(caller.app_id)}',
        f'"endpoint_id":{encode_any(caller.endpoint_id)}',
        f'"context":{encode_any(caller.context)}',
        '"event":"backwards_response"',
        f'"data":{inner}',
    ]
    return "{" + ",".join(envelope) + "}"


def go_map(value: Any) -> Any:
    """Plain JSON values as Go's map[string]any encodes them: keys sorted at every level."""
    if isinstance(value, dict):
        return GoMap({key: go_map(item) for key, item in value.items()})
    if isinstance(value, list):
        return [go_map(item) for item in value]
    return value


def go_format(value: Any, verb: str = "v") -> str:
    """A decoded JSON value as Go's fmt prints it with %v or %s (maps sorted, `map[k:v]`).
    Under %s a value that is no string, map or slice shows as a bad verb: `%!s(float64=5)`."""
    match value:
        case dict():
            members = " ".join(f"{key}:{go_format(value[key], verb)}" for key in sorted(value))
            return f"map[{members}]"
        case list():
            return "[" + " ".join(go_format(item, verb) for item in value) + "]"
        case str():
            return value
        case None:
            return "<nil>"  # a nil element prints so under any verb
        case bool():
            text, kind = ("true" if value else "false"), "bool"
        case _:
            text, kind = _go_float(float(value)), "float64"
    return f"%!s({kind}={text})" if verb == "s" else text


def _go_float(number: float) -> str:
    """%v of a float64: strconv's shortest 'g', in exponent form below 1e-4 and from 1e6."""
    if math.isinf(number) or math.isnan(number):
        return "NaN" if math.isnan(number) else ("+Inf" if number > 0 else "-Inf")
    if number == 0:
        return "-0" if math.copysign(1, number) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(number)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)  # where the decimal point falls after the digits
    prefix = "-" if sign else ""
    if not -4 <= point - 1 < 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        power = point - 1
        return f"{prefix}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def session_traceparent(header: str | None) -> str:
    """The daemon's trace for a dispatch (log.TraceMiddleware): the trace and span ids of the
    request's own `traceparent` when it is a valid version-00 one, else new random ones."""
    parts = (header or "").split("-")
    if len(parts) == 4 and parts[0] == "00" and _hex(parts[1], 32) and _hex(parts[2], 16):
        return f"00-{parts[1]}-{parts[2]}-01"
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def _hex(text: str, length: int) -> bool:
    return len(text) == length and all(char in "0123456789abcdefABCDEF" for char in text)
