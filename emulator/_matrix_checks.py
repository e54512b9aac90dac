"""The matrix's checks of one loaded plugin, sent as HTTP requests to an emulator app.

The plugin runs under the SDK version being checked (through the subprocess runtime);
the app and its HTTP client run here, in process, with no socket. Every dispatch route is
sent one small request, and the answer tells whether the SDK routed the action (an answer,
or an error from the plugin) or not (the SDK's bare ``end``: no item at all). Then an
``llm/invoke`` and a ``tool/invoke`` carrying an ``app_id`` show whether plugin code
receives it, for plugins whose answers show their session.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.contract.envelopes import NO_POLLING_RESULT, TIMEOUT_MESSAGE, ErrorType

# What each dispatch route is sent: what it names (a model type, a tool, ...) and its own
# fields, shaped as Dify sends them (fixtures/payloads), kept small. The plugin need not
# declare what a request names: an error from the plugin still shows that the SDK routed
# the action; only an action the SDK does not route ends with nothing at all.
_PROMPT: dict[str, Any] = {"prompt_messages": [{"role": "user", "content": "matrix probe"}]}
_LLM_CALL: dict[str, Any] = {**_PROMPT, "model_parameters": {}, "tools": None, "stop": None}
_TEXT_PART = {"content": "matrix probe", "content_type": "text"}
_SILENT_WAV_HEX = (
    "524946463400000057415645666d74201000000001000100401f0000803e000002001000"
    "646174611000000000000000000000000000000000000000"
)
_HTTP_REQUEST_HEX = b"GET /callback?code=matrix HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".hex()
_OAUTH = {"redirect_uri": "http://127.0.0.1/callback", "system_credentials": {}}
_SUBSCRIPTION = {"expires_at": -1, "endpoint": "http://127.0.0.1/trigger", "parameters": {}}
_TRIGGER_CALL = {"credential_type": "api-key", "subscription": _SUBSCRIPTION}
PROBE_BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "llm/invoke": ("llm", {**_LLM_CALL, "stream": True}),
    "llm/num_tokens": ("llm", {**_PROMPT, "tools": None}),
    "text_embedding/invoke": ("text-embedding", {"texts": ["probe"], "input_type": "document"}),
    "multimodal_embedding/invoke": (
        "text-embedding",
        {"documents": [_TEXT_PART], "input_type": "document"},
    ),
    "text_embedding/num_tokens": ("text-embedding", {"texts": ["probe"]}),
    "rerank/invoke": ("rerank", {"query": "probe", "docs": ["probe"]}),
    "multimodal_rerank/invoke": ("rerank", {"query": _TEXT_PART, "docs": [_TEXT_PART]}),
    "tts/invoke": ("tts", {"content_text": "probe", "voice": "alice"}),
    "tts/model/voices": ("tts", {"language": "en-US"}),
    "speech2text/invoke": ("speech2text", {"file": _SILENT_WAV_HEX}),
    "moderation/invoke": ("moderation", {"text": "probe"}),
    "model/validate_provider_credentials": ("model provider", {}),
    "model/validate_model_credentials": ("llm", {}),
    "model/schema": ("llm", {}),
    "model/polling/start": ("llm", {**_LLM_CALL, "stream": False, "json_schema": None}),
    "model/polling/check": ("llm", {"plugin_state": {"job": "matrix-probe"}}),
    "tool/invoke": ("tool", {"credential_type": "api-key", "tool_parameters": {}}),
    "tool/validate_credentials": ("tool provider", {}),
    "tool/get_runtime_parameters": ("tool", {}),
    "agent_strategy/invoke": ("agent strategy", {"agent_strategy_params": {}}),
    "oauth/get_authorization_url": ("tool provider", _OAUTH),
    "oauth/get_credentials": ("tool provider", {**_OAUTH, "raw_http_request": _HTTP_REQUEST_HEX}),
    "oauth/refresh_credentials": ("tool provider", _OAUTH),
    "dynamic_select/fetch_parameter_options": ("tool action", {"parameter": "matrix"}),
    "datasource/validate_credentials": ("other", {}),
    "datasource/get_website_crawl": ("datasource", {"datasource_parameters": {}}),
    "datasource/get_online_document_pages": ("datasource", {"datasource_parameters": {}}),
    "datasource/get_online_document_page_content": (
        "datasource",
        {"page": {"workspace_id": "matrix", "page_id": "matrix", "type": "page"}},
    ),
    "datasource/online_drive_browse_files": (
        "datasource",
        {"request": {"bucket": None, "prefix": "", "max_keys": 1, "next_page_parameters": None}},
    ),
    "datasource/online_drive_download_file": (
        "datasource",
        {"request": {"bucket": None, "id": "matrix"}},
    ),
    "trigger/invoke_event": (
        "trigger",
        {
            **_TRIGGER_CALL,
            "event": "matrix",
            "parameters": {},
            "payload": {},
            "raw_http_request": _HTTP_REQUEST_HEX,
        },
    ),
    "trigger/validate_credentials": ("other", {}),
    "trigger/dispatch_event": ("trigger", {**_TRIGGER_CALL, "raw_http_request": _HTTP_REQUEST_HEX}),
    "trigger/subscribe": (
        "trigger",
        {"credential_type": "api-key", "endpoint": "http://127.0.0.1/trigger", "parameters": {}},
    ),
    "trigger/unsubscribe": ("trigger", _TRIGGER_CALL),
    "trigger/refresh": ("trigger", _TRIGGER_CALL),
}
_PLACEHOLDER = "matrix-probe"
_TENANT = "00000000-0000-4000-8000-00000000a7c1"
_KEY = "matrix-key"
DAEMON_STREAM_ERRORS = frozenset(
    {"unmarshal_error", "invoke_dify_error", "unknown_stream_message_type"}
)
"""Errors the daemon raises inside a stream about what the plugin sent (not the plugin's own)."""
_TOOLS_TRIED = 5
PROBE_APP_ID = "matrix-app-id-7c41"

PluginLoader = Callable[[Path, Path], Any]
"""Loads a plugin directory with an interpreter; returns a runtime plugin (start, close)."""


@dataclass
class RouteOutcome:
    """How one dispatch route fared: answered, plugin error, bare end, refused, not probed."""

    route: str
    outcome: str
    detail: str = ""


@dataclass
class PluginChecks:
    """The HTTP checks of one plugin under one SDK, behind an emulator app."""

    loads: bool
    load_error: str = ""
    app_id: str = "not checked"
    """Whether model code saw the app_id sent with llm/invoke."""
    tool_app_id: str = "not checked"
    """Whether tool code saw the app_id sent with tool/invoke."""
    routes: list[RouteOutcome] = field(default_factory=list)


@dataclass(frozen=True)
class Declared:
    """The names the plugin declares, as its SDK registered them; requests must use them."""

    models: list[dict[str, Any]] = field(default_factory=list)
    """Model providers: ``{"name", "models": {model_type: [model, ...]}}``."""
    tools: dict[str, list[str]] = field(default_factory=dict)
    agent_strategies: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_facts(cls, facts: dict[str, Any]) -> Declared:
        return cls(
            facts.get("providers") or [],
            facts.get("tools") or {},
            facts.get("agent_strategies") or {},
        )

    def model(self, model_type: str) -> tuple[str, str] | None:
        for provider in self.models:
            if names := provider["models"].get(model_type):
                return provider["name"], names[0]
        return None

    def tool_calls(self) -> Iterator[tuple[str, str]]:
        for provider, tools in self.tools.items():
            for tool in tools:
                yield provider, tool


def load_with_subprocess_runtime(directory: Path, python: Path) -> Any:
    """Start ``directory`` as its own process under ``python`` (the subprocess runtime)."""
    from emulator.runtime.subprocess import SubprocessPlugin

    return SubprocessPlugin.load(directory, python=python)


def check_plugin(
    directory: Path, python: Path, plugin_facts: dict[str, Any], loader: PluginLoader
) -> PluginChecks:
    """Load the plugin with ``python`` and send it the contract checks over HTTP."""
    try:
        plugin = loader(directory, python)
    except Exception as error:
        return PluginChecks(loads=False, load_error=f"{type(error).__name__}: {error}")
    try:
        return _checks_over_http(plugin, Declared.from_facts(plugin_facts))
    finally:
        _close(plugin)


def _close(plugin: Any) -> None:
    close = getattr(plugin, "close", None)
    if close is not None:
        close()


def _checks_over_http(plugin: Any, declared: Declared) -> PluginChecks:
    with warnings.catch_warnings():
        # Starlette prefers httpx2 for its test client; httpx is what the emulator ships with.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    from emulator.config import Settings
    from emulator.runtime.registry import PluginSet
    from emulator.server.app import create_app

    app = create_app(Settings(key=_KEY, max_execution_timeout=30), PluginSet([plugin]))
    headers = {"X-Api-Key": _KEY, "X-Plugin-ID": plugin.identity.plugin_id}
    with TestClient(app, base_url="http://daemon", headers=headers) as client:
        routes = [_route_outcome(client, path, declared) for path in _served_routes()]
        return PluginChecks(
            loads=True,
            app_id=_model_app_id(client, declared),
            tool_app_id=_tool_app_id(client, declared),
            routes=routes,
        )


def _served_routes() -> list[str]:
    from emulator.contract.routes import ROUTES

    return [route.path for route in ROUTES]


def _body(path: str, declared: Declared, app_id: str | None = None, tool: int = 0) -> Any:
    names, fields = PROBE_BODIES[path]
    data = {**_named(names, declared, tool), **fields}
    if names != "agent strategy":
        data["credentials"] = {"api_key": _PLACEHOLDER}
    if path == "tts/invoke":
        data["tenant_id"] = _TENANT
    body: dict[str, Any] = {"data": data, "user_id": "matrix-user"}
    if app_id is not None:
        body["app_id"] = app_id
    return body


def _named(names: str, declared: Declared, tool: int) -> dict[str, Any]:
    """The data keys that name what a request is for, from what the plugin declares."""
    provider = declared.models[0]["name"] if declared.models else _PLACEHOLDER
    tool_provider, tool_name = _nth(list(declared.tool_calls()), tool)
    strategy_provider, strategy = _nth(
        [(p, s) for p, strategies in declared.agent_strategies.items() for s in strategies], 0
    )
    if names == "model provider":
        return {"provider": provider}
    if names == "tool":
        return {"provider": tool_provider, "tool": tool_name}
    if names == "tool provider":
        return {"provider": tool_provider}
    if names == "tool action":
        return {"provider": tool_provider, "provider_action": tool_name}
    if names == "agent strategy":
        return {"agent_strategy_provider": strategy_provider, "agent_strategy": strategy}
    if names == "datasource":
        return {"provider": _PLACEHOLDER, "datasource": _PLACEHOLDER}
    if names in ("trigger", "other"):
        return {"provider": _PLACEHOLDER}
    model_provider, model = declared.model(names) or (provider, _PLACEHOLDER)
    return {"provider": model_provider, "model_type": names, "model": model}


def _nth(pairs: list[tuple[str, str]], index: int) -> tuple[str, str]:
    return pairs[index] if index < len(pairs) else (_PLACEHOLDER, _PLACEHOLDER)


def _post(client: Any, path: str, body: Any) -> tuple[int, list[dict[str, Any]]]:
    """The status and the answer's items (the SSE items, or the one plain JSON answer)."""
    response = client.post(f"/plugin/{_TENANT}/dispatch/{path}", json=body)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        lines = response.text.split("\n\n")
        items = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]
        return response.status_code, items
    return response.status_code, [response.json()]


def _route_outcome(client: Any, path: str, declared: Declared) -> RouteOutcome:
    if path not in PROBE_BODIES:
        return RouteOutcome(path, "not probed", "the matrix has no request body for it")
    status, items = _post(client, path, _body(path, declared))
    return classify(path, status, items)


def classify(path: str, status: int, items: list[dict[str, Any]]) -> RouteOutcome:
    """What one route's answer says about the SDK and the plugin."""
    errors = [item for item in items if item.get("code") != 0]
    if errors and _outer_error_type(errors[0]) != ErrorType.PLUGIN_INVOKE:
        text = error_text(errors[0])
        if status != 200:
            return RouteOutcome(path, "refused", f"HTTP {status}: {text}")
        if text.endswith(TIMEOUT_MESSAGE):
            return RouteOutcome(path, "timed out", text)
        return RouteOutcome(path, "daemon error", text)
    if errors and _inner_error_type(errors[0]) in DAEMON_STREAM_ERRORS:
        return RouteOutcome(path, "bad reply", error_text(errors[0]))
    if errors and error_text(errors[0]).endswith(NO_POLLING_RESULT):
        return RouteOutcome(path, "bare end", "the SDK ended the session without an answer")
    if errors:
        return RouteOutcome(path, "plugin error", error_text(errors[0]))
    if not items:
        return RouteOutcome(path, "bare end", "the SDK ended the session without an answer")
    return RouteOutcome(path, "answered", f"{len(items)} item(s)")


def _outer_error_type(item: dict[str, Any]) -> str:
    """The daemon's own error type: PluginInvokeError when the plugin's session produced it."""
    try:
        outer = json.loads(str(item.get("message", "")))
    except ValueError:
        return ""
    return str(outer.get("error_type", "")) if isinstance(outer, dict) else ""


def _inner_error_type(item: dict[str, Any]) -> str:
    return error_text(item).partition(":")[0]


def error_text(item: dict[str, Any]) -> str:
    """The innermost error type and message: the daemon nests the plugin's error as JSON."""
    error_type, message = "", str(item.get("message", ""))
    for _ in range(4):
        try:
            nested = json.loads(message)
        except ValueError:
            break
        if not (isinstance(nested, dict) and "error_type" in nested):
            break
        error_type, message = str(nested["error_type"]), str(nested.get("message", ""))
    return shorten(f"{error_type}: {message}" if error_type else message)


def shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _model_app_id(client: Any, declared: Declared) -> str:
    if declared.model("llm") is None:
        return "n/a (the plugin declares no llm model)"
    return _app_id_seen(client, "llm/invoke", _body("llm/invoke", declared, PROBE_APP_ID))


def _tool_app_id(client: Any, declared: Declared) -> str:
    """Tries the plugin's tools in turn until one shows its session."""
    calls = list(declared.tool_calls())[:_TOOLS_TRIED]
    if not calls:
        return "n/a (the plugin declares no tool)"
    verdict = ""
    for index in range(len(calls)):
        body = _body("tool/invoke", declared, PROBE_APP_ID, tool=index)
        verdict = _app_id_seen(client, "tool/invoke", body)
        if not verdict.startswith("not observable"):
            return verdict
    return verdict


def _app_id_seen(client: Any, path: str, body: Any) -> str:
    """Does plugin code see the app_id sent? Only a plugin that shows its session can tell."""
    status, items = _post(client, path, body)
    errors = [item for item in items if item.get("code") != 0]
    if status != 200 or errors or not items:
        problem = error_text(errors[0] if errors else items[0]) if items else "no answer"
        return f"not observable ({path}: HTTP {status}: {problem})"
    if PROBE_APP_ID in json.dumps(items):
        return "yes"
    seen = _echoed_app_id(items)
    if seen is not _NOTHING_ECHOED:
        return f"no (plugin code saw app_id {json.dumps(seen)})"
    return "not observable (the plugin's answer does not show its session)"


_NOTHING_ECHOED = object()


def _echoed_app_id(value: Any) -> Any:
    """The app_id a session-echoing plugin wrote anywhere in its answer, if any."""
    if isinstance(value, dict):
        if "app_id" in value:
            return value["app_id"]
        value = list(value.values())
    if isinstance(value, str):
        value = [_json_or_none(line) for line in value.splitlines()]
    if isinstance(value, list):
        for element in value:
            if (found := _echoed_app_id(element)) is not _NOTHING_ECHOED:
                return found
    return _NOTHING_ECHOED


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
