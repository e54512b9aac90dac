"""The HTTP face of the daemon: one endpoint per row of the route table.

Checks run in the daemon's order (internal/server: CheckingKey, FetchPluginInstallation,
RedirectPluginInvoke, the controller's bind, the session): 401 wrong key, 400 no X-Plugin-ID,
400 empty tenant, 404 plugin not installed (unless a fault rule names it, standing in for its
installation), an injected `NoNode` (where the daemon looks for a node), 400 validation, an
injected `ErrorAnswer` (where the daemon creates the session), then the stream. Every answer
is a daemon envelope; anything unknown gets gin's NoRoute answer. Each dispatch is recorded in
the app's journal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse
from starlette.routing import Match

from emulator.backwards import Backwards, Caller, session_traceparent
from emulator.config import Settings
from emulator.contract import envelopes
from emulator.contract.envelopes import ErrorType
from emulator.contract.findings import ContractWarning, WarningKind
from emulator.contract.gojson import GoMap, encode_any
from emulator.contract.routes import ROUTES, Route
from emulator.contract.wrapper import BoundRequest, bind
from emulator.faults import Faults, StreamPlan
from emulator.journal import Dispatch, Journal
from emulator.runtime.registry import PluginSet
from emulator.runtime.sdk import observing_sessions
from emulator.runtime.subprocess import PluginUnavailableError
from emulator.server import control, management
from emulator.server.answers import error_answer, json_answer
from emulator.server.streaming import (
    CallsBack,
    EventStream,
    FrameBridge,
    planned_items,
    record_fault,
    session_items,
)
from emulator.sessions import Item, new_session_id, request_line

logger = logging.getLogger("emulator.server")

WARNING_HEADER = "X-Emulator-Warning"
MAX_WARNING_HEADERS = 16
MAX_WARNING_LENGTH = 400
"""Warning headers are bounded: clients refuse answers with too many or too long headers."""
BIND_IN_THREAD_FROM = 64 * 1024
"""Bodies from this size are decoded off the event loop, so they do not stall other requests."""


class _TenantConvertor(Convertor[str]):
    """gin's `:tenant_id` also matches an empty segment; the daemon then answers 400."""

    regex = "[^/]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("tenant", _TenantConvertor())


def create_app(
    settings: Settings,
    plugins: PluginSet,
    journal: Journal | None = None,
    faults: Faults | None = None,
    backwards: Backwards | None = None,
) -> FastAPI:
    app = FastAPI(
        title="dify-plugin-daemon emulator",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.plugins = plugins
    app.state.journal = Journal(cap=settings.journal_cap) if journal is None else journal
    app.state.faults = Faults() if faults is None else faults
    app.state.backwards = Backwards() if backwards is None else backwards
    app.add_api_route("/health/check", _health, methods=["GET"])
    app.add_api_route("/_emulator/openapi.json", _openapi, methods=["GET"], include_in_schema=False)
    control.add_routes(app)
    management.add_routes(app)
    for route in ROUTES:
        app.add_api_route(
            route.url_path.replace("{tenant_id}", "{tenant_id:tenant}"),
            _dispatch_endpoint(route),
            methods=["POST"],
            name=route.action,
            summary=f"{route.access_type}/{route.action}",
        )
    app.add_exception_handler(StarletteHTTPException, _no_route)  # type: ignore[arg-type]
    return app


async def _openapi(request: Request) -> Response:
    """The emulator's own OpenAPI document; like every route but the health check, keyed."""
    settings: Settings = request.app.state.settings
    if request.headers.get("x-api-key", "") != settings.key:
        return error_answer(401, ErrorType.UNAUTHORIZED, "unauthorized")
    return json_answer(200, json.dumps(request.app.openapi()))


async def _health(request: Request) -> Response:
    return json_answer(200, health_body(request.app.state.plugins))


def health_body(plugins: PluginSet) -> str:
    """gin writes the health map with sorted keys; `plugins` is ours, the rest the daemon's."""
    health = GoMap(
        active_dispatch_requests=plugins.active_requests,
        active_requests=plugins.active_requests,
        build_time="",
        platform="local",
        plugins=[plugin.identity.unique_identifier for plugin in plugins],
        pool_status=GoMap(busy=0, free=0, total=0),
        status="ok",
        version="emulator",
    )
    return encode_any(health)


async def _no_route(request: Request, exc: StarletteHTTPException) -> Response:
    """gin's NoRoute, after its trailing-slash redirect for a path served with that method."""
    path = request.url.path
    if path.endswith("/") and _is_route(request.app, path[:-1], request.method):
        target = str(request.url.replace(path=path[:-1]))
        return RedirectResponse(target, status_code=301 if request.method == "GET" else 307)
    return json_answer(404, envelopes.NO_ROUTE)


def _is_route(app: FastAPI, path: str, method: str) -> bool:
    scope = {"type": "http", "path": path, "method": method, "root_path": ""}
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)


def _dispatch_endpoint(route: Route) -> Callable[[Request], Awaitable[Response]]:
    async def dispatch(request: Request) -> Response:
        started = time.perf_counter()
        record = _open_record(route, request)
        try:
            answer = await _dispatch(route, request, request.path_params["tenant_id"], record)
        except Exception as error:
            logger.exception("emulator error on %s", route.path)
            answer = error_answer(500, ErrorType.INTERNAL, f"emulator error: {error!r}")
        if isinstance(answer, EventStream):
            answer.after_close(lambda: _log_request(route, request, answer, started))
            answer.after_close(lambda: record.record_end(answer.client_gone))
        else:
            record.record_answer(answer.status_code, bytes(answer.body).decode())
            _log_request(route, request, answer, started)
        return answer

    return dispatch


def _open_record(route: Route, request: Request) -> Dispatch:
    journal: Journal = request.app.state.journal
    headers = [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
    ]
    tenant_id: str = request.path_params["tenant_id"]
    return journal.open(route.path, tenant_id, request.headers.get("x-plugin-id", ""), headers)


async def _dispatch(route: Route, request: Request, tenant_id: str, record: Dispatch) -> Response:
    settings: Settings = request.app.state.settings
    plugins: PluginSet = request.app.state.plugins
    faults: Faults = request.app.state.faults
    if refusal := _refusal_before_the_body(request, tenant_id):
        return refusal
    plugin_id = request.headers["x-plugin-id"]
    plugin = plugins.get(plugin_id)
    if plugin is None and not faults.installs(route.path, plugin_id):
        return _plugin_not_found()
    if injected := _injected_answer(faults, route, plugin_id, "node", record):
        return injected
    body = await request.body()
    try:
        bound = await _bind(route, body, tenant_id, request.headers.get("content-type"))
    except RecursionError:
        return error_answer(500, ErrorType.INTERNAL, TOO_DEEP)
    request.state.bound = bound
    record.record_binding(bound.values, bound.warnings)
    if bound.validation_errors:
        message = "\n".join(bound.validation_errors)
        return error_answer(400, ErrorType.BAD_REQUEST, message, warning_headers(bound))
    if injected := _injected_answer(faults, route, plugin_id, "session", record):
        return injected
    if plugin is None:  # the rule that stood in for its installation is used up
        return _plugin_not_found()
    session_id = new_session_id()
    try:
        line = request_line(route, bound.values, session_id)
        rejection = _sdk_rejection(plugin, line)
        bound.warnings.extend(rejection)
        record.add_warnings(rejection)
    except (RecursionError, ValueError):
        # The SDK could not read the line (in practice: nested too deep for its parser).
        return error_answer(500, ErrorType.INTERNAL, TOO_DEEP, warning_headers(bound))
    if settings.strict and bound.warnings:
        message = strict_message(bound.warnings)
        return error_answer(400, ErrorType.BAD_REQUEST, message, warning_headers(bound))
    record.request_line = line
    plan = faults.stream_plan(route.path, plugin_id)
    session = _Session(route, plugin, bound, line, session_id, record, plan)
    traceparent = session_traceparent(request.headers.get("traceparent"))
    calls = _calls_back(request.app.state.backwards, session, traceparent)
    return await _run_session(session, plugins, settings, calls)


def _refusal_before_the_body(request: Request, tenant_id: str) -> Response | None:
    """The daemon's middleware up to the plugin lookup: key, plugin id, tenant."""
    if request.headers.get("x-api-key", "") != request.app.state.settings.key:
        return error_answer(401, ErrorType.UNAUTHORIZED, "unauthorized")
    plugin_id = request.headers.get("x-plugin-id", "")
    if not plugin_id:
        return error_answer(400, ErrorType.BAD_REQUEST, "plugin_id is required")
    if not tenant_id:
        return error_answer(400, ErrorType.BAD_REQUEST, "tenant_id is required")
    return None


def _plugin_not_found() -> Response:
    return error_answer(404, ErrorType.PLUGIN_NOT_FOUND, "plugin not found")


def _injected_answer(
    faults: Faults, route: Route, plugin_id: str, step: str, record: Dispatch
) -> Response | None:
    """The answer an injected fault gives at this step of the daemon's checks, if any."""
    injected = faults.answer_for(route.path, plugin_id, step)
    if injected is None:
        return None
    record.faults.append(injected.applied)
    return json_answer(injected.status, injected.body)


def _sdk_rejection(plugin: Any, line: str) -> list[ContractWarning]:
    """The daemon forwards what Go accepts; the plugin's SDK may still refuse to build it."""
    rejection = plugin.request_rejection(line)
    if rejection is None:
        return []
    return [
        ContractWarning(
            WarningKind.SDK_REJECTS,
            "$.data",
            "what the plugin's SDK accepts",
            rejection,
            "accepted by the daemon, rejected by the SDK",
        )
    ]


TOO_DEEP = (
    "emulator: this body nests too deep to hand to a plugin. The real daemon decodes up to "
    "10000 levels, but the plugin SDK's own reader refuses request lines nested about 200 "
    "levels deep, so behind the daemon this request would end with 'killed by timeout'."
)


async def _bind(
    route: Route, body: bytes, tenant_id: str, content_type: str | None
) -> BoundRequest:
    if len(body) < BIND_IN_THREAD_FROM:
        return bind(route.data_model, body, tenant_id, content_type)
    return await run_in_threadpool(bind, route.data_model, body, tenant_id, content_type)


def strict_message(warnings: list[ContractWarning]) -> str:
    lines = "\n".join(str(warning) for warning in warnings)
    return f"strict mode: the real daemon would accept this request but silently\n{lines}"


@dataclass(frozen=True)
class _Session:
    """One dispatch on its way to the plugin, and what it needs on the way back."""

    route: Route
    plugin: Any
    bound: BoundRequest
    line: str
    session_id: str
    record: Dispatch
    plan: StreamPlan


def _calls_back(backwards: Backwards, session: _Session, traceparent: str) -> CallsBack:
    values = session.bound.values
    caller = Caller(
        session_id=session.session_id,
        tenant_id=values["tenant_id"],
        user_id=values["user_id"],
        access_type=session.route.access_type,
        plugin_id=session.plugin.identity.plugin_id,
        plugin_directory=session.plugin.directory,
        conversation_id=values["conversation_id"],
        message_id=values["message_id"],
        app_id=values["app_id"],
        endpoint_id=values["endpoint_id"],
        context=values["context"],
        traceparent=traceparent,
    )
    return CallsBack(backwards, caller, session.plugin.send, session.record)


async def _run_session(
    session: _Session, plugins: PluginSet, settings: Settings, calls: CallsBack
) -> Response:
    bridge = FrameBridge(asyncio.get_running_loop(), session.session_id)
    headers = warning_headers(session.bound)
    route = session.route
    try:
        await _start(session, bridge)
    except PluginUnavailableError as error:
        return _unavailable_answer(route, str(error), headers, session.record)
    plugins.active_requests += 1
    if route.streamed:
        items = session_items(route, bridge, settings.max_execution_timeout, calls)
        planned = planned_items(items, session.plan, session.record)
        stream = EventStream(planned, headers, session.record, session.plan)
        stream.after_close(lambda: _finish(plugins, bridge))
        return stream
    try:
        return await _last_item_answer(route, bridge, headers, session.plan, calls)
    finally:
        _finish(plugins, bridge)


async def _start(session: _Session, bridge: FrameBridge) -> None:
    with observing_sessions(session.record.record_session):
        if session.plugin.start_may_wait:
            await run_in_threadpool(session.plugin.start, session.line, bridge.on_event)
        else:
            session.plugin.start(session.line, bridge.on_event)


def _unavailable_answer(
    route: Route, message: str, headers: list[tuple[str, str]], record: Dispatch
) -> Response:
    """No plugin instance took the request: the daemon's one-item stream, or its JSON 500 on
    the polling routes (which report the failed write as the plugin's invoke error)."""
    if not route.streamed:
        return json_answer(500, envelopes.error(ErrorType.PLUGIN_INVOKE, message), headers)
    item = Item(envelopes.error(ErrorType.INTERNAL, message), is_error=True)
    return EventStream(_one(item), headers, record)


async def _one(item: Item) -> AsyncGenerator[Item, None]:
    yield item


def _finish(plugins: PluginSet, bridge: FrameBridge) -> None:
    bridge.close()
    plugins.active_requests -= 1


async def _last_item_answer(
    route: Route,
    bridge: FrameBridge,
    headers: list[tuple[str, str]],
    plan: StreamPlan,
    calls: CallsBack,
) -> Response:
    """The polling routes: plain JSON with the plugin's last item, 500 on its error."""
    record = calls.record
    record_fault(record, plan, "first_item_delay")
    if plan.first_item_delay:
        await asyncio.sleep(plan.first_item_delay)
    last: Item | None = None
    items = planned_items(session_items(route, bridge, None, calls), plan, record)
    async with aclosing(items):
        async for item in items:
            if item.is_error:
                return json_answer(500, item.envelope, headers)
            last = item
    if last is None:
        return json_answer(
            500,
            envelopes.error(ErrorType.PLUGIN_INVOKE, envelopes.NO_POLLING_RESULT),
            headers,
        )
    return json_answer(200, last.envelope, headers)


def warning_headers(bound: BoundRequest) -> list[tuple[str, str]]:
    shown = bound.warnings[:MAX_WARNING_HEADERS]
    headers = [(WARNING_HEADER, _header_value(str(warning))) for warning in shown]
    if hidden := len(bound.warnings) - len(shown):
        headers.append((WARNING_HEADER, f"more_warnings $: {hidden} more not shown"))
    return headers


def _header_value(text: str) -> str:
    """Header-safe: printable ASCII only (a caller's key could carry anything)."""
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    printable = "".join(char if " " <= char <= "~" else f"\\x{ord(char):02x}" for char in escaped)
    if len(printable) > MAX_WARNING_LENGTH:
        return printable[: MAX_WARNING_LENGTH - 3] + "..."
    return printable


def _log_request(route: Route, request: Request, answer: Response, started: float) -> None:
    bound: BoundRequest | None = getattr(request.state, "bound", None)
    app_id = bound.values["app_id"] if bound is not None else None
    status = answer.status_code
    logger.info(
        "%s plugin=%s app_id=%s status=%s duration=%.1fms",
        route.path,
        request.headers.get("x-plugin-id", "-"),
        app_id,
        status,
        (time.perf_counter() - started) * 1000,
    )
