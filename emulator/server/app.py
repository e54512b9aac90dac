"""The HTTP face of the daemon: one endpoint per row of the route table.

Checks run in the daemon's order (internal/server: CheckingKey, FetchPluginInstallation, the
controller's bind, the session): 401 wrong key, 400 no X-Plugin-ID, 404 plugin not installed,
400 validation, then the stream. Every answer is a daemon envelope; anything unknown gets
gin's NoRoute answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse

from emulator.config import Settings
from emulator.contract import envelopes
from emulator.contract.envelopes import ErrorType
from emulator.contract.findings import ContractWarning
from emulator.contract.gojson import GoMap, encode_any
from emulator.contract.routes import ROUTES, Route
from emulator.contract.wrapper import BoundRequest, bind
from emulator.runtime.registry import PluginSet
from emulator.server.streaming import EventStream, FrameBridge, session_items
from emulator.sessions import Item, new_session_id, request_line

logger = logging.getLogger("emulator.server")

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
WARNING_HEADER = "X-Emulator-Warning"


def create_app(settings: Settings, plugins: PluginSet) -> FastAPI:
    app = FastAPI(
        title="dify-plugin-daemon emulator",
        docs_url=None,
        redoc_url=None,
        openapi_url="/_emulator/openapi.json",
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.plugins = plugins
    app.add_api_route("/health/check", _health, methods=["GET"])
    for route in ROUTES:
        app.add_api_route(
            route.url_path,
            _dispatch_endpoint(route),
            methods=["POST"],
            name=route.action,
            summary=f"{route.access_type}/{route.action}",
        )
    app.add_exception_handler(StarletteHTTPException, _no_route)  # type: ignore[arg-type]
    return app


def json_answer(status: int, body: str, headers: list[tuple[str, str]] = ()) -> Response:  # type: ignore[assignment]
    response = Response(content=body.encode(), status_code=status)
    response.headers["content-type"] = JSON_CONTENT_TYPE
    response.raw_headers.extend((name.encode(), value.encode()) for name, value in headers)
    return response


def error_answer(
    status: int,
    error_type: ErrorType,
    message: str,
    headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> Response:
    return json_answer(status, envelopes.error(error_type, message), headers)


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
    path = request.url.path
    if path.endswith("/") and path != "/" and _is_route(request.app, path.rstrip("/")):
        return RedirectResponse(
            path.rstrip("/"), status_code=301 if request.method == "GET" else 307
        )
    return json_answer(404, envelopes.NO_ROUTE)


def _is_route(app: FastAPI, path: str) -> bool:
    scope = {"type": "http", "path": path, "method": "POST", "root_path": ""}
    return any(route.matches(scope)[0].value != 0 for route in app.router.routes)


def _dispatch_endpoint(route: Route) -> Callable[[Request, str], Awaitable[Response]]:
    async def dispatch(request: Request, tenant_id: str) -> Response:
        started = time.perf_counter()
        answer = await _dispatch(route, request, tenant_id)
        if isinstance(answer, EventStream):
            answer.after_close(lambda: _log_request(route, request, answer, started))
        else:
            _log_request(route, request, answer, started)
        return answer

    return dispatch


async def _dispatch(route: Route, request: Request, tenant_id: str) -> Response:
    settings: Settings = request.app.state.settings
    plugins: PluginSet = request.app.state.plugins
    if request.headers.get("x-api-key", "") != settings.key:
        return error_answer(401, ErrorType.UNAUTHORIZED, "unauthorized")
    plugin_id = request.headers.get("x-plugin-id", "")
    if not plugin_id:
        return error_answer(400, ErrorType.BAD_REQUEST, "plugin_id is required")
    plugin = plugins.get(plugin_id)
    if plugin is None:
        return error_answer(404, ErrorType.PLUGIN_NOT_FOUND, "plugin not found")
    body = await request.body()
    bound = bind(route.data_model, body, tenant_id, request.headers.get("content-type"))
    request.state.bound = bound
    if bound.validation_errors:
        message = "\n".join(bound.validation_errors)
        return error_answer(400, ErrorType.BAD_REQUEST, message, warning_headers(bound))
    if settings.strict and bound.warnings:
        return error_answer(400, ErrorType.BAD_REQUEST, strict_message(bound.warnings))
    return await _run_session(route, plugins, plugin, bound, settings)


def strict_message(warnings: list[ContractWarning]) -> str:
    lines = "\n".join(str(warning) for warning in warnings)
    return f"strict mode: the real daemon would accept this request but silently\n{lines}"


async def _run_session(
    route: Route, plugins: PluginSet, plugin: Any, bound: BoundRequest, settings: Settings
) -> Response:
    session_id = new_session_id()
    bridge = FrameBridge(asyncio.get_running_loop(), session_id)
    plugins.active_requests += 1
    plugin.start(request_line(route, bound.values, session_id), bridge.on_event)
    headers = warning_headers(bound)
    if route.streamed:
        items = session_items(route, bridge, settings.max_execution_timeout)
        stream = EventStream(items, headers)
        stream.after_close(lambda: _finish(plugins, bridge))
        return stream
    try:
        return await _last_item_answer(route, bridge, headers)
    finally:
        _finish(plugins, bridge)


def _finish(plugins: PluginSet, bridge: FrameBridge) -> None:
    bridge.close()
    plugins.active_requests -= 1


async def _last_item_answer(
    route: Route, bridge: FrameBridge, headers: list[tuple[str, str]]
) -> Response:
    """The polling routes: plain JSON with the plugin's last item, 500 on its error."""
    last: Item | None = None
    async for item in session_items(route, bridge, timeout=None):
        if item.is_error:
            return json_answer(500, item.envelope, headers)
        last = item
    if last is None:
        return json_answer(
            500,
            envelopes.error(ErrorType.PLUGIN_INVOKE, "no polling result received from plugin"),
            headers,
        )
    return json_answer(200, last.envelope, headers)


def warning_headers(bound: BoundRequest) -> list[tuple[str, str]]:
    return [(WARNING_HEADER, _header_value(str(warning))) for warning in bound.warnings]


def _header_value(text: str) -> str:
    """Header-safe: printable ASCII only (a caller's key could carry anything)."""
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(char if " " <= char <= "~" else f"\\x{ord(char):02x}" for char in escaped)


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
