"""A dispatch as a plugin session, both ways.

Out: the one JSON line the daemon writes to a plugin for a bound request
(io_tunnel/mapping.go and session_manager: `{"user_id","type","action"}` merged with the data
struct flattened by mapstructure, `omitempty` keys dropped, keys sorted; then the session
envelope). In: each session message the plugin sends back, judged as the daemon judges it
(io_tunnel/generic.go), becomes the next item of the HTTP answer, or nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from emulator.contract import envelopes
from emulator.contract.blob_chunks import (
    BlobAssembler,
    Joined,
    Panicked,
    Refused,
    standard_base64,
)
from emulator.contract.gojson import (
    GoDecoder,
    GoMap,
    RawMessage,
    encode,
    encode_any,
    encode_string,
    encode_struct,
    is_empty,
    parse_value,
)
from emulator.contract.gotypes import (
    GoStruct,
    GoType,
    Pointer,
    Struct,
    StructValue,
    flat_fields,
)
from emulator.contract.responses import ErrorResponse, PluginUniversalEvent, SessionMessage
from emulator.contract.routes import Route
from emulator.contract.validation import validate
from emulator.contract.wrapper import NULLABLE_IDS

logger = logging.getLogger("emulator.plugin")


def new_session_id() -> str:
    return str(uuid.uuid4())


def request_line(route: Route, request: dict[str, Any], session_id: str) -> str:
    """The exact line the daemon writes to the plugin's stdin for this request."""
    members = {
        "user_id": encode_string(request["user_id"]),
        "type": encode_string(route.access_type),
        "action": encode_string(route.action),
    }
    members.update(_struct_to_map(route.data_model, request["data"]))
    payload = _sorted_object(members)
    envelope = [f'"session_id":{encode_string(session_id)}']
    envelope += [f'"{name}":{encode_any(request[name])}' for name in NULLABLE_IDS]
    envelope += [f'"context":{encode_any(request["context"])}', '"event":"request"']
    return "{" + ",".join(envelope) + f',"data":{payload}' + "}"


def _struct_to_map(cls: type[GoStruct], value: dict[str, Any]) -> dict[str, str]:
    """mapstructure's struct-to-map: embedded structs flattened, omitempty members dropped,
    and every nested struct (or non-nil pointer to one) made a map itself, so its keys go out
    sorted; slices keep their Go values and encode in declaration order."""
    members = {}
    for field in flat_fields(cls):
        member = value[field.json_name]
        if not (field.omitempty and is_empty(member, field.gotype)):
            members[field.json_name] = _mapped(member, field.gotype)
    return members


def _mapped(value: Any, gotype: GoType) -> str:
    if isinstance(gotype, Pointer) and value is not None:
        gotype = gotype.elem
    if isinstance(gotype, Struct):
        return _sorted_object(_struct_to_map(gotype.cls, value))
    return encode(value, gotype)


def _sorted_object(members: dict[str, str]) -> str:
    return "{" + ",".join(f"{encode_string(k)}:{members[k]}" for k in sorted(members)) + "}"


@dataclass(frozen=True)
class Item:
    """One item of the HTTP answer: a success or error envelope, already Go-encoded."""

    envelope: str
    is_error: bool = False


@dataclass(frozen=True)
class Closed:
    """The plugin ended the session (an `end` frame)."""


END = Closed()


@dataclass(frozen=True)
class Invoke:
    """A backwards invocation: the plugin asks Dify for something (a session message `invoke`)."""

    data: Any
    """The message's `data`, parsed: {type, backwards_request_id, request}."""


@dataclass(frozen=True)
class PluginEvent:
    """A line the plugin printed, as the daemon splits it (ParsePluginUniversalEvent)."""

    event: str
    session_id: str
    data: RawMessage | None


def read_plugin_event(line: str) -> PluginEvent | None:
    """The daemon's first layer: None (and a log line) where it cannot read the line."""
    value, error = unmarshal(PluginUniversalEvent, parse_value(line))
    if error is not None:
        logger.error("plugin printed a line the daemon cannot read: %s: %s", error, line[:1024])
        return None
    return PluginEvent(value["event"], value["session_id"], value["data"])


class SessionReader:
    """Reads one session's messages in order, as the daemon's handler for its route does.

    On agent_strategy/invoke it also keeps the session's half-received blobs, joined as the
    daemon's agent service joins them (see blob_chunks)."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self._blobs = BlobAssembler() if route.reassembles_blobs else None

    def read(self, raw: RawMessage | None) -> Item | Closed | Invoke | None:
        """What the daemon makes of one session message: an item, the end, a call back into
        Dify, or nothing at all."""
        message, error = unmarshal(SessionMessage, None if raw is None else raw.parsed)
        if error is not None:
            logger.error("unmarshal json failed, failed to parse session message: %s", error)
            return None
        kind, data = message["type"], message["data"].parsed
        if kind == "stream":
            return self._stream(data)
        if kind == "end":
            return END
        if kind == "error":
            return _plugin_error_item(data)
        if kind == "invoke":
            return Invoke(data)
        return Item(
            envelopes.stream_error(
                "unknown_stream_message_type", f"unknown stream message type: {kind}"
            ),
            is_error=True,
        )

    def _stream(self, data: Any) -> Item | Closed | None:
        model = self.route.response_model
        value, error = unmarshal(model, data)
        if error is not None:
            return Item(
                envelopes.stream_error("unmarshal_error", f"unmarshal json failed: {error}"),
                is_error=True,
            )
        if self._blobs is not None and value["type"] == "blob_chunk":
            return _joined_item(model, self._blobs.take(value["message"], value["meta"]))
        return Item(envelopes.success(encode_struct(model, value)))


def read_session_message(route: Route, raw: RawMessage | None) -> Item | Closed | Invoke | None:
    """One message of a fresh session (no earlier chunks to join with)."""
    return SessionReader(route).read(raw)


def _joined_item(
    model: type[GoStruct], outcome: Joined | Refused | Panicked | None
) -> Item | Closed | None:
    match outcome:
        case Joined(blob=blob, meta=meta):
            fields = {"type": "blob", "message": GoMap(blob=standard_base64(blob)), "meta": meta}
            return Item(envelopes.success(encode_struct(model, StructValue(model, fields))))
        case Refused(message=message):
            return Item(envelopes.error(envelopes.ErrorType.PLUGIN_INVOKE, message), is_error=True)
        case Panicked():
            return END
    return None


def _plugin_error_item(data: Any) -> Item | None:
    value, error = unmarshal(ErrorResponse, data)
    if error is not None:
        # The daemon ignores a malformed error frame: the session stays open until its timeout.
        logger.warning("plugin error frame ignored, as the daemon ignores it: %s", error)
        return None
    return Item(
        envelopes.plugin_error(value["error_type"], value["message"], value["args"]),
        is_error=True,
    )


def unmarshal(cls: type[GoStruct], document: Any) -> tuple[dict[str, Any], str | None]:
    """parser.UnmarshalJsonBytes on a parsed document: json.Unmarshal, then the validator."""
    decoder = GoDecoder()
    value = decoder.decode_document(cls, document)
    if decoder.error is not None:
        return value, decoder.error
    errors = validate(cls, value, cls.go_type_name or cls.__name__)
    return value, "\n".join(errors) if errors else None
