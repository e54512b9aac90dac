"""Calls back into Dify (backwards invocations), answered the way the daemon answers them.

A plugin asks Dify for a model, tool, app or its storage through its session: the SDK sends
an `invoke` session message `{type, backwards_request_id, request}` and waits for
`backwards_response` lines. The daemon (internal/core/io_tunnel/backwards_invocation/task.go)
refuses such calls from model sessions, checks the permissions the plugin's manifest
declares, serves `storage` from its own persistence and forwards everything else to Dify's
inner API. Each answer goes back as `response` events, then `end`; a failure as `error`,
then `end`.

The emulator answers a call, in this order, from: a handler registered in Python for its
invoke type; for `storage`, its own in-memory store (as the daemon serves storage itself);
Dify's inner API, when `DIFY_INNER_API_URL` is set; otherwise a refusal, worded as the
daemon words a call Dify did not answer.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import httpx
import yaml

from emulator.contract.gojson import GoMap, compact, encode_any, encode_string

logger = logging.getLogger("emulator.backwards")

Send = Callable[[str], None]
"""Writes one daemon->plugin line (a `backwards_response` envelope) to the plugin."""

Handler = Callable[["BackwardsCall"], Any]
"""Answers a call in Dify's place. Its return value becomes the answer:
a mapping is one `response` (message "struct"); bytes are `{"data": <hex>}`, as a storage
`get` answers; any other iterable gives one "stream" `response` per mapping; None gives no
`response`. Whatever it raises becomes the `error` event."""

MAGIC_NUMBER = 0x0F
HEADER_LENGTH = 0x0A
DEFAULT_MAX_CHUNK = 30 * 1024 * 1024
CONNECT_TIMEOUT = 5.0
"""The daemon's dialer gives up connecting to Dify after 5 s (calldify/http_client.go)."""
STORAGE_MISSING = "load data failed, please check if the key is correct or you have not set it"


@dataclass(frozen=True)
class BackwardsSettings:
    """Where calls back into Dify go: the daemon's own settings and env names."""

    inner_api_url: str | None = None
    """DIFY_INNER_API_URL: Dify's API server; unset, nothing is forwarded."""
    inner_api_key: str = ""
    """DIFY_INNER_API_KEY: sent as X-Inner-Api-Key."""
    write_timeout: float = 5.0
    """DIFY_BACKWARDS_INVOCATION_WRITE_TIMEOUT (the env value is milliseconds)."""
    read_timeout: float = 240.0
    """DIFY_BACKWARDS_INVOCATION_READ_TIMEOUT (the env value is milliseconds)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BackwardsSettings:
        env = os.environ if env is None else env
        return cls(
            inner_api_url=env.get("DIFY_INNER_API_URL") or None,
            inner_api_key=env.get("DIFY_INNER_API_KEY", ""),
            write_timeout=_milliseconds(env, "DIFY_BACKWARDS_INVOCATION_WRITE_TIMEOUT", 5000),
            read_timeout=_milliseconds(env, "DIFY_BACKWARDS_INVOCATION_READ_TIMEOUT", 240000),
        )


def _milliseconds(env: Mapping[str, str], name: str, default: int) -> float:
    text = env.get(name)
    if text is None:
        return default / 1000
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of milliseconds, not {text!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {value}")
    return value / 1000


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


@dataclass
class CallRecord:
    """What became of one call, for the journal; filled in while the call runs."""

    invoke_type: str
    request_id: str
    request: dict[str, Any]
    answered_by: str = ""
    """`refused`, `denied`, `handler`, `storage`, `forward` or `unanswered`."""
    responses: int = 0
    error: str | None = None
    ended: bool = False

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


@dataclass(frozen=True)
class _Route:
    """How the daemon forwards one invoke type (calldify/http_request.go, task.go)."""

    path: str
    failure: str
    """The daemon's prefix for a failed call, e.g. `invoke llm model failed`."""
    stream_failure: str | None = None
    """For streamed answers: the prefix for a failure while reading the stream."""
    unwrap: bool = False
    """Dify nests the answer one level deeper (`{"data": {"data": ...}}`)."""

    @property
    def streamed(self) -> bool:
        return self.stream_failure is not None


FORWARDED: dict[str, _Route] = {
    "tool": _Route("invoke/tool", "invoke tool failed", "read tool response failed"),
    "llm": _Route("invoke/llm", "invoke llm model failed", "read llm model failed"),
    "llm_structured_output": _Route(
        "invoke/llm/structured-output",
        "invoke llm with structured output model failed",
        "read llm with structured output model failed",
    ),
    "text_embedding": _Route("invoke/text-embedding", "invoke text-embedding model failed"),
    "multimodal_embedding": _Route(
        "invoke/multimodal-embedding", "invoke multimodal embedding model failed"
    ),
    "rerank": _Route("invoke/rerank", "invoke rerank model failed"),
    "multimodal_rerank": _Route(
        "invoke/multimodal-rerank", "invoke multimodal rerank model failed"
    ),
    "tts": _Route("invoke/tts", "invoke tts model failed", "read tts model failed"),
    "speech2text": _Route("invoke/speech2text", "invoke speech2text model failed"),
    "moderation": _Route("invoke/moderation", "invoke moderation model failed"),
    "app": _Route("invoke/app", "invoke app failed", "read app failed"),
    "node_parameter_extractor": _Route(
        "invoke/parameter-extractor", "invoke parameter extractor failed"
    ),
    "node_question_classifier": _Route(
        "invoke/question-classifier", "invoke question classifier failed"
    ),
    "system_summary": _Route("invoke/summary", "invoke summary failed"),
    "upload_file": _Route("upload/file/request", "upload file failed"),
    "fetch_app": _Route("fetch/app/info", "fetch app failed", unwrap=True),
}

_PERMISSIONS: dict[str, tuple[tuple[str, ...], str]] = {
    # invoke type: (manifest switches that must all be on, the name in the daemon's refusal)
    "tool": (("tool",), "tool"),
    "llm": (("model", "model.llm"), "llm"),
    "llm_structured_output": (("model", "model.llm"), "llm"),
    "system_summary": (("model", "model.llm"), "llm"),
    "text_embedding": (("model", "model.text_embedding"), "text-embedding"),
    "multimodal_embedding": (("model", "model.text_embedding"), "text-embedding"),
    "rerank": (("model", "model.rerank"), "rerank"),
    "multimodal_rerank": (("model", "model.rerank"), "rerank"),
    "tts": (("model", "model.tts"), "tts"),
    "speech2text": (("model", "model.speech2text"), "speech2text"),
    "moderation": (("model", "model.moderation"), "moderation"),
    "node_parameter_extractor": (("node",), "node"),
    "node_question_classifier": (("node",), "node"),
    "app": (("app",), "app"),
    "fetch_app": (("app",), "app"),
    "storage": (("storage",), "storage"),
    "upload_file": ((), "storage"),
}


class Backwards:
    """Answers a plugin's calls back into Dify: handlers first, then storage, Dify, refusal."""

    def __init__(self, settings: BackwardsSettings | None = None) -> None:
        self.settings = BackwardsSettings.from_env() if settings is None else settings
        self.storage = MemoryStorage()
        self._handlers: dict[str, Handler] = {}

    @overload
    def handle(self, invoke_type: str, handler: Handler) -> Handler: ...

    @overload
    def handle(self, invoke_type: str) -> Callable[[Handler], Handler]: ...

    def handle(
        self, invoke_type: str, handler: Handler | None = None
    ) -> Handler | Callable[[Handler], Handler]:
        """Answer calls of `invoke_type` (`storage`, `llm`, `tool`, ...) with `handler`;
        without one, return a decorator that registers the function it decorates."""
        if invoke_type not in _PERMISSIONS:
            known = ", ".join(sorted(_PERMISSIONS))
            raise ValueError(f"unknown invoke type {invoke_type!r}; the daemon knows: {known}")
        if handler is None:
            return lambda decorated: self.handle(invoke_type, decorated)
        self._handlers[invoke_type] = handler
        return handler

    def clear(self) -> None:
        """Forget every handler and everything stored."""
        self._handlers.clear()
        self.storage.clear()

    def dispatch(self, data: Any, caller: Caller, send: Send) -> CallRecord | str:
        """Start answering one `invoke` message's `data` (as parsed by gojson).

        Returns the call's record, whose answer is written through `send` (now, or from a
        worker thread), or, for a message the daemon cannot read, the text it ends the HTTP
        stream with (`invoke dify failed: <text>`).
        """
        request = _invoke_request(data)
        if isinstance(request, str):
            return request
        invoke_type, request_id, detail = request
        record = CallRecord(invoke_type, request_id, detail)
        answer = _Answer(caller, request_id, send, record)

        if caller.access_type == "model":
            record.answered_by = "refused"
            answer.fail(f"you can not invoke dify from {caller.access_type}")
            return record
        if denial := permission_denial(invoke_type, caller.plugin_directory):
            record.answered_by = "denied"
            answer.fail(denial)
            return record

        detail = {**detail, "tenant_id": caller.tenant_id, "user_id": caller.user_id}
        detail["type"] = invoke_type
        call = BackwardsCall(invoke_type, request_id, detail, caller)
        worker = threading.Thread(
            target=self._answer,
            args=(call, answer),
            name=f"backwards {invoke_type} {request_id}",
            daemon=True,
        )
        worker.start()
        return record

    def _answer(self, call: BackwardsCall, answer: _Answer) -> None:
        try:
            self._answer_call(call, answer)
        except Exception as error:
            logger.exception("answering the %s call %s failed", call.invoke_type, call.request_id)
            answer.error(f"emulator: {type(error).__name__}: {error}")
        finally:
            answer.end()

    def _answer_call(self, call: BackwardsCall, answer: _Answer) -> None:
        handler = self._handlers.get(call.invoke_type)
        route = FORWARDED.get(call.invoke_type)
        if handler is not None:
            answer.record.answered_by = "handler"
            _run_handler(handler, call, route, answer)
        elif call.invoke_type == "storage":
            answer.record.answered_by = "storage"
            self.storage.answer(call, answer)
        elif route is not None and self.settings.inner_api_url:
            answer.record.answered_by = "forward"
            _forward(self.settings, route, call, answer)
        else:
            answer.record.answered_by = "unanswered"
            prefix = route.failure if route is not None else "invoke dify failed"
            answer.error(
                f"{prefix}: emulator: nothing answers {call.invoke_type!r} calls: register"
                " a handler for it or set DIFY_INNER_API_URL"
            )


class _Answer:
    """Writes one call's `backwards_response` lines to the plugin, and records them."""

    def __init__(self, caller: Caller, request_id: str, send: Send, record: CallRecord) -> None:
        self.caller = caller
        self.request_id = request_id
        self.record = record
        self._send = send

    def response(self, message: str, data: Any) -> None:
        self.record.responses += 1
        self._write("response", message, data)

    def error(self, message: str) -> None:
        self.record.error = message
        self._write("error", message, None)

    def end(self) -> None:
        self.record.ended = True
        self._write("end", "", None)

    def fail(self, message: str) -> None:
        self.error(message)
        self.end()

    def _write(self, event: str, message: str, data: Any) -> None:
        line = response_line(self.caller, self.request_id, event, message, data)
        try:
            self._send(line)
        except Exception:
            logger.exception("could not deliver a backwards_response to %s", self.caller.plugin_id)


def response_line(caller: Caller, request_id: str, event: str, message: str, data: Any) -> str:
    """The daemon's `backwards_response` line: the session envelope around one event."""
    inner = (
        f'{{"backwards_request_id":{encode_string(request_id)},"event":{encode_string(event)},'
        f'"message":{encode_string(message)},"data":{encode_any(_go_value(data))}}}'
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


def _go_value(value: Any) -> Any:
    """Plain JSON values as Go's map[string]any encodes them: keys sorted at every level."""
    if isinstance(value, dict):
        return GoMap({key: _go_value(item) for key, item in value.items()})
    if isinstance(value, list):
        return [_go_value(item) for item in value]
    return value


def _invoke_request(data: Any) -> tuple[str, str, dict[str, Any]] | str:
    """prepareDifyInvocationArguments: the message's type, request id and request."""
    if data is None:
        return "invoke request is empty"
    try:
        request = json.loads(compact(data))
    except (TypeError, ValueError) as error:
        return f"unmarshal invoke request failed: {error}"
    if not isinstance(request, dict):
        kind = _json_kind(request)
        return (
            f"unmarshal invoke request failed: json: cannot unmarshal {kind} into Go value"
            " of type map[string]interface {}"
        )
    invoke_type = request.get("type")
    if not isinstance(invoke_type, str):
        return f"invoke request missing type: {go_format(request)}"
    request_id = request.get("backwards_request_id")
    if not isinstance(request_id, str):
        return f"invoke request missing request_id: {go_format(request)}"
    detail = request.get("request")
    if not isinstance(detail, dict):
        return f"invoke request missing request: {go_format(request)}"
    return invoke_type, request_id, detail


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def go_format(value: Any) -> str:
    """A decoded JSON value as Go's fmt %s / %v prints it (maps sorted, `map[k:v]`)."""
    match value:
        case None:
            return "<nil>"
        case bool():
            return "true" if value else "false"
        case dict():
            members = " ".join(f"{key}:{go_format(value[key])}" for key in sorted(value))
            return f"map[{members}]"
        case list():
            return "[" + " ".join(go_format(item) for item in value) + "]"
        case float() | int():
            return _go_float(float(value))
        case _:
            return str(value)


def _go_float(number: float) -> str:
    # %v of a float64 is %g with the shortest exact digits; exponents from 1e21.
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    text = repr(number)
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        return f"{mantissa}e{sign}{exponent.lstrip('+-').zfill(2)}"
    return text


def permission_denial(invoke_type: str, plugin_directory: Path | None) -> str | None:
    """The daemon's refusal for a call the plugin's manifest does not permit, or None."""
    rule = _PERMISSIONS.get(invoke_type)
    if rule is None:
        return f"unsupported invoke type: {invoke_type}"
    switches, name = rule
    permission = declared_permission(plugin_directory)
    if all(_switched_on(permission, switch) for switch in switches):
        return None
    return f"permission denied, you need to enable {name} access in plugin manifest"


def declared_permission(plugin_directory: Path | None) -> dict[str, Any]:
    """`resource.permission` of the plugin's manifest.yaml ({} when it declares none)."""
    if plugin_directory is None:
        return {}
    return _read_permission(Path(plugin_directory) / "manifest.yaml")


_permission_cache: dict[Path, tuple[float, dict[str, Any]]] = {}


def _read_permission(manifest: Path) -> dict[str, Any]:
    try:
        changed = manifest.stat().st_mtime
    except OSError:
        return {}
    cached = _permission_cache.get(manifest)
    if cached is not None and cached[0] == changed:
        return cached[1]
    document = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
    resource = document.get("resource") if isinstance(document, dict) else None
    permission = resource.get("permission") if isinstance(resource, dict) else None
    found = permission if isinstance(permission, dict) else {}
    _permission_cache[manifest] = (changed, found)
    return found


def _switched_on(permission: dict[str, Any], switch: str) -> bool:
    section, _, flag = switch.partition(".")
    entry = permission.get(section)
    if not isinstance(entry, dict):
        return False
    return entry.get(flag or "enabled") is True


# handlers -----------------------------------------------------------------------------------


def _run_handler(
    handler: Handler, call: BackwardsCall, route: _Route | None, answer: _Answer
) -> None:
    prefix = route.failure if route is not None else None
    try:
        result = handler(call)
        for message, data in _replies(result):
            answer.response(message, data)
    except Exception as error:
        text = f"{type(error).__name__}: {error}" if not str(error) else str(error)
        answer.error(f"{prefix}: {text}" if prefix else text)


def _replies(result: Any) -> Iterator[tuple[str, Any]]:
    if result is None:
        return
    if isinstance(result, bytes | bytearray):
        yield "struct", {"data": bytes(result).hex()}
    elif isinstance(result, Mapping):
        yield "struct", _plain(result)
    elif isinstance(result, Iterable) and not isinstance(result, str):
        for item in result:
            if not isinstance(item, Mapping):
                raise TypeError(f"a handler's stream yields mappings, not {item!r}")
            yield "stream", _plain(item)
    else:
        raise TypeError(
            f"a handler returns a mapping, bytes, an iterable of mappings or None, not {result!r}"
        )


def _plain(value: Mapping[str, Any]) -> Any:
    """What the plugin will read: the value through JSON (so it must be JSON-able)."""
    return json.loads(json.dumps(value))


# storage ------------------------------------------------------------------------------------


class MemoryStorage:
    """The daemon's plugin storage, in memory: per tenant, per plugin, per key."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str, str], bytes] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str, plugin_id: str, key: str) -> bytes | None:
        with self._lock:
            return self._values.get((tenant_id, plugin_id, key))

    def set(self, tenant_id: str, plugin_id: str, key: str, value: bytes) -> None:
        with self._lock:
            self._values[(tenant_id, plugin_id, key)] = bytes(value)

    def delete(self, tenant_id: str, plugin_id: str, key: str) -> bool:
        with self._lock:
            return self._values.pop((tenant_id, plugin_id, key), None) is not None

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def answer(self, call: BackwardsCall, answer: _Answer) -> None:
        """executeDifyInvocationStorageTask, on this store."""
        opt, key, problem = _storage_request(call.request)
        if problem is not None:
            answer.error(f"unmarshal backwards invoke request failed: {problem}")
            return
        where = (call.tenant_id, call.plugin_id, key)
        if opt == "get":
            value = self.get(*where)
            if value is None:
                answer.error(STORAGE_MISSING)
            else:
                answer.response("struct", {"data": value.hex()})
        elif opt == "set":
            data, hex_problem = _go_hex_decode(str(call.request.get("value", "")))
            if hex_problem is not None:
                answer.error(f"decode data failed: {hex_problem}")
                return
            self.set(*where, data)
            answer.response("struct", {"data": "ok"})
        elif opt == "del":
            deleted = self.delete(*where)
            answer.response("struct", {"data": "ok", "deleted_num": int(deleted)})
        else:
            exists = self.get(*where) is not None
            answer.response("struct", {"data": exists, "exist_num": int(exists)})


def _storage_request(request: dict[str, Any]) -> tuple[str, str, str | None]:
    """InvokeStorageRequest through mapstructure and the validator (the checks that bite)."""
    for name in ("opt", "key", "value"):
        value = request.get(name)
        if value is not None and not isinstance(value, str):
            return (
                "",
                "",
                (
                    "error decoding map: 1 error(s) decoding:\n\n"
                    f"* '{name}' expected type 'string', got unconvertible type"
                    f" '{_go_kind(value)}', value: '{go_format(value)}'"
                ),
            )
    opt, key = request.get("opt") or "", request.get("key") or ""
    errors = []
    if not opt:
        errors.append(_field_error("Opt", "required"))
    elif opt not in ("get", "set", "del", "exist"):
        errors.append(_field_error("Opt", "storage_opt"))
    if not key:
        errors.append(_field_error("Key", "required"))
    if errors:
        return "", "", "error validating struct: " + "\n".join(errors)
    return opt, key, None


def _field_error(name: str, tag: str) -> str:
    return (
        f"Key: 'InvokeStorageRequest.{name}' Error:Field validation for '{name}'"
        f" failed on the '{tag}' tag"
    )


def _go_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "float64"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return "[]interface {}"


def _go_hex_decode(text: str) -> tuple[bytes, str | None]:
    """hex.DecodeString, with Go's error texts."""
    for index, char in enumerate(text):
        if char not in "0123456789abcdefABCDEF":
            if index == len(text) - 1 and len(text) % 2 == 1:
                break
            return b"", f"encoding/hex: invalid byte: U+{ord(char):04X} {_go_quote(char)}"
    if len(text) % 2 == 1:
        return b"", "encoding/hex: odd length hex string"
    return bytes.fromhex(text), None


def _go_quote(char: str) -> str:
    return "'\\''" if char == "'" else f"'{char}'"


# forwarding to Dify's inner API --------------------------------------------------------------


def inner_api_url(base_url: str, path: str) -> str:
    """url.JoinPath(base, "inner", "api", path): one slash between parts, base path kept."""
    return base_url.rstrip("/") + "/inner/api/" + path.strip("/")


def _forward(
    settings: BackwardsSettings, route: _Route, call: BackwardsCall, answer: _Answer
) -> None:
    url = inner_api_url(settings.inner_api_url or "", route.path)
    body = _forwarded_body(call.request)
    headers = {"X-Inner-Api-Key": settings.inner_api_key, "Content-Type": "application/json"}
    timeout = httpx.Timeout(
        connect=CONNECT_TIMEOUT,
        write=settings.write_timeout,
        read=settings.read_timeout,
        pool=None,
    )
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            if route.streamed:
                _relay_stream(route, response, answer)
            else:
                _relay_struct(route, response, answer)
    except httpx.HTTPError as error:
        answer.error(f'{route.failure}: Post "{url}": {_transport_reason(error)}')


def _forwarded_body(request: dict[str, Any]) -> bytes:
    # The daemon's embedded BaseInvokeDifyRequest leads its structs: tenant, user, type.
    leading = {name: request[name] for name in ("tenant_id", "user_id", "type") if name in request}
    rest = {name: value for name, value in request.items() if name not in leading}
    return encode_any({**leading, **rest}).encode()


def _transport_reason(error: httpx.HTTPError) -> str:
    reason = str(error) or type(error).__name__
    if isinstance(error, httpx.ConnectError):
        return f"dial tcp: {reason}"
    if isinstance(error, httpx.TimeoutException):
        return f"context deadline exceeded ({type(error).__name__})"
    return reason


def _relay_struct(route: _Route, response: httpx.Response, answer: _Answer) -> None:
    """calldify.Request: the JSON body whatever the status, `{"data", "error"}`."""
    try:
        document = json.loads(response.read())
    except ValueError as error:
        answer.error(f"{route.failure}: {error}")
        return
    if not isinstance(document, dict):
        answer.error(f"{route.failure}: json: cannot unmarshal into the response envelope")
        return
    if problem := _envelope_problem(document):
        answer.error(f"{route.failure}: {problem}")
        return
    data = document["data"]
    if route.unwrap:
        data = data.get("data") if isinstance(data, dict) else None
        if data is None:
            answer.error(f"{route.failure}: data is nil")
            return
    answer.response("struct", data)


def _envelope_problem(document: dict[str, Any]) -> str | None:
    error = document.get("error")
    if isinstance(error, str) and error:
        return f"request failed: {error}"
    if document.get("data") is None:
        return "data is nil"
    return None


def _relay_stream(route: _Route, response: httpx.Response, answer: _Answer) -> None:
    """calldify.StreamResponse: length-prefixed chunks, each a `{"data", "error"}`."""
    if response.status_code != 200:
        text = response.read().decode("utf-8", "replace")
        answer.error(
            f"{route.failure}: request failed with status code: {response.status_code}"
            f" and respond with: {text}"
        )
        return
    for chunk, problem in length_prefixed_chunks(response.iter_bytes()):
        if problem is not None:
            answer.error(f"{route.stream_failure}: {problem}")
            return
        try:
            document = json.loads(chunk)
        except ValueError:
            logger.warning("stream data not match: %s", chunk[:200])
            continue
        if not isinstance(document, dict):
            logger.warning("stream data not match: %s", chunk[:200])
            continue
        if envelope_problem := _envelope_problem(document):
            answer.error(f"{route.stream_failure}: {envelope_problem}")
            return
        answer.response("stream", document["data"])


def length_prefixed_chunks(
    stream: Iterable[bytes], max_chunk: int = DEFAULT_MAX_CHUNK
) -> Iterator[tuple[bytes, str | None]]:
    """parser.LengthPrefixedChunking: per chunk a 4-byte system header (magic 0x0f, one spare
    byte, header length 10 as uint16 LE), a 10-byte header (data length as uint32 LE first),
    then the data. Yields each chunk's data, or a problem once and stops."""
    buffer = bytearray()
    pieces = iter(stream)

    def fill(size: int) -> bool:
        while len(buffer) < size:
            piece = next(pieces, None)
            if piece is None:
                return False
            buffer.extend(piece)
        return True

    while True:
        if not fill(4):
            if buffer:
                yield b"", "unexpected EOF\nfailed to read system header"
            return
        if buffer[0] != MAGIC_NUMBER:
            yield b"", f"magic number mismatch: {buffer[0]}"
            return
        (header_length,) = struct.unpack_from("<H", buffer, 2)
        if header_length != HEADER_LENGTH:
            yield b"", f"header length mismatch: {header_length}"
            return
        if not fill(4 + HEADER_LENGTH):
            yield b"", "unexpected EOF\nfailed to read header"
            return
        (length,) = struct.unpack_from("<I", buffer, 4)
        if length > max_chunk:
            yield b"", f"data length is too long: {length}"
            return
        if not fill(4 + HEADER_LENGTH + length):
            yield b"", "EOF\nfailed to read data"
            return
        start = 4 + HEADER_LENGTH
        yield bytes(buffer[start : start + length]), None
        del buffer[: start + length]


def length_prefixed(data: bytes) -> bytes:
    """One chunk framed as Dify's inner API frames it (for fakes of Dify in tests)."""
    return struct.pack("<BBHI6x", MAGIC_NUMBER, 0, HEADER_LENGTH, len(data)) + data
