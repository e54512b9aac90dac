"""The emulator's own routes, under `/_emulator/` where no daemon route can be.

    GET    /_emulator/journal          recorded dispatches (filters: route, plugin_id, app_id,
                                       limit: the newest n; app_id=null: no app_id, absent
                                       or null)
    DELETE /_emulator/journal          forget them
    GET    /_emulator/faults           the fault rules
    POST   /_emulator/faults           add one: {"fault": {"kind": ..., ...}, "route": ...,
                                       "plugin_id": ..., "times": ...} (no other keys)
    DELETE /_emulator/faults           remove them all; /_emulator/faults/{id} removes one
    POST   /_emulator/reset            journal and faults both

Each needs the daemon's X-Api-Key: the journal holds the credentials callers sent.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from emulator.contract.envelopes import ErrorType
from emulator.faults import FaultError, Faults, fault_from_json
from emulator.journal import ANY, Journal
from emulator.server.answers import error_answer

PREFIX = "/_emulator"
Endpoint = Callable[[Request], Awaitable[Response]]


def add_routes(app: FastAPI) -> None:
    routes: list[tuple[str, str, Endpoint]] = [
        ("GET", "/journal", _list_journal),
        ("DELETE", "/journal", _clear_journal),
        ("GET", "/faults", _list_faults),
        ("POST", "/faults", _add_fault),
        ("DELETE", "/faults", _clear_faults),
        ("DELETE", "/faults/{rule_id:int}", _remove_fault),
        ("POST", "/reset", _reset),
    ]
    for method, path, endpoint in routes:
        app.add_api_route(PREFIX + path, _keyed(endpoint), methods=[method], tags=["emulator"])


def _keyed(endpoint: Endpoint) -> Endpoint:
    async def checked(request: Request) -> Response:
        if request.headers.get("x-api-key", "") != request.app.state.settings.key:
            return error_answer(401, ErrorType.UNAUTHORIZED, "unauthorized")
        return await endpoint(request)

    checked.__name__ = endpoint.__name__
    checked.__doc__ = endpoint.__doc__
    return checked


async def _list_journal(request: Request) -> Response:
    """The recorded dispatches that match the filters, oldest first."""
    journal: Journal = request.app.state.journal
    query = request.query_params
    try:
        limit = int(query["limit"]) if "limit" in query else None
    except ValueError:
        return error_answer(
            400, ErrorType.BAD_REQUEST, f"limit: expected an integer, got {query['limit']!r}"
        )
    app_id = query.get("app_id", ANY)
    chosen = journal.dispatches(
        route=query.get("route"),
        plugin_id=query.get("plugin_id"),
        app_id=None if app_id == "null" else app_id,
    )
    if limit is not None:
        chosen = chosen[-limit:] if limit > 0 else []
    return _json(200, journal.to_json(chosen))


async def _clear_journal(request: Request) -> Response:
    """Forget every recorded dispatch."""
    request.app.state.journal.clear()
    return Response(status_code=204)


async def _list_faults(request: Request) -> Response:
    """The fault rules, in the order they were added."""
    faults: Faults = request.app.state.faults
    return _json(200, {"rules": [rule.to_json() for rule in faults.rules()]})


RULE_KEYS = ("fault", "route", "plugin_id", "times")


async def _add_fault(request: Request) -> Response:
    """Add a fault rule; answer it with its id."""
    faults: Faults = request.app.state.faults
    try:
        spec = json.loads(await request.body())
        _check_rule_keys(spec)
        rule = faults.add(
            fault_from_json(spec["fault"]),
            route=spec.get("route"),
            plugin_id=spec.get("plugin_id"),
            times=spec.get("times"),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return error_answer(400, ErrorType.BAD_REQUEST, _rule_error(error))
    return _json(201, rule.to_json())


def _check_rule_keys(spec: object) -> None:
    """A rule is an object of known keys: a misspelt `times` must not make a rule that never
    runs out."""
    if not isinstance(spec, dict):
        raise FaultError(f"expected a JSON object, got a {_json_type(spec)}")
    for key in spec:
        if key not in RULE_KEYS:
            raise FaultError(f"unknown key {key!r} (expected {', '.join(RULE_KEYS)})")


def _json_type(value: object) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


async def _clear_faults(request: Request) -> Response:
    """Remove every fault rule."""
    request.app.state.faults.clear()
    return Response(status_code=204)


async def _remove_fault(request: Request) -> Response:
    """Remove one fault rule by id."""
    rule_id: int = request.path_params["rule_id"]
    if not request.app.state.faults.remove(rule_id):
        return error_answer(404, ErrorType.NOT_FOUND, f"no fault rule {rule_id}")
    return Response(status_code=204)


async def _reset(request: Request) -> Response:
    """Forget the journal and remove every fault rule."""
    request.app.state.journal.clear()
    request.app.state.faults.clear()
    return Response(status_code=204)


def _rule_error(error: Exception) -> str:
    if isinstance(error, FaultError):
        return f"fault rule: {error}"
    if isinstance(error, KeyError):
        return f"fault rule: {error.args[0]} is missing"
    return f"fault rule: expected a JSON object with a 'fault' object: {error}"


def _json(status: int, document: dict[str, Any]) -> Response:
    return Response(json.dumps(document), status, media_type="application/json")
