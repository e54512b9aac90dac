"""Auth, over loopback against `python -m emulator serve`: every dispatch route, every
management, endpoint, debugging and asset route, and every control route refuses a missing or
wrong X-Api-Key with the daemon's 401 envelope; only the health check answers without one.

Routes the emulator does not serve at all (`/v2/invoke`, pprof, which the daemon serves only
when enabled) get gin's NoRoute 404 with or without a key, so they refuse too.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from emulator.contract.envelopes import NO_ROUTE
from emulator.contract.routes import ROUTES
from emulator.server import management
from helpers import KEY, TENANT, payload
from support import ServedEmulator, Tally

UNAUTHORIZED = (
    '{"code":-401,"message":"{\\"message\\":\\"unauthorized\\",'
    '\\"error_type\\":\\"PluginDaemonUnauthorizedError\\",\\"args\\":null}","data":null}'
)
WRONG_KEYS: list[list[tuple[str, str]]] = [
    [],
    [("X-Api-Key", "")],
    [("X-Api-Key", KEY.upper())],
    [("X-Api-Key", KEY + "x")],
    [("X-Api-Key", KEY[:-1])],
    [("Authorization", f"Bearer {KEY}")],
    [("X-Admin-Api-Key", KEY)],
    # Go's Header.Get, like the emulator, reads the first of two.
    [("X-Api-Key", "wrong"), ("X-Api-Key", KEY)],
]
CONTROL_ROUTES = [
    ("GET", "/_emulator/journal"),
    ("DELETE", "/_emulator/journal"),
    ("GET", "/_emulator/faults"),
    ("POST", "/_emulator/faults"),
    ("DELETE", "/_emulator/faults"),
    ("DELETE", "/_emulator/faults/1"),
    ("POST", "/_emulator/reset"),
    ("GET", "/_emulator/openapi.json"),
]
UNSERVED_DAEMON_ROUTES = [
    ("POST", "/v2/invoke/llm"),
    ("GET", "/debug/pprof/"),
]


def send(
    served: ServedEmulator, method: str, path: str, headers: list[tuple[str, str]], body: Any
) -> httpx.Response:
    with served.client(timeout=30) as client:
        content = json.dumps(body).encode()
        all_headers = [*headers, ("X-Plugin-ID", "emulator/echo")]
        all_headers.append(("Content-Type", "application/json"))
        return client.request(method, path, content=content, headers=all_headers)


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.path)
def test_every_dispatch_route_refuses_a_missing_or_wrong_key(
    served: ServedEmulator, tally: Tally, route: Any
) -> None:
    path = f"/plugin/{TENANT}/dispatch/{route.path}"
    body = payload(route.path, with_app_id=True)

    answers = [send(served, "POST", path, headers, body) for headers in WRONG_KEYS]
    right = send(served, "POST", path, [("X-Api-Key", KEY)], body)
    tally.add(requests=len(WRONG_KEYS) + 1)

    assert [(a.status_code, a.text) for a in answers] == [(401, UNAUTHORIZED)] * len(WRONG_KEYS)
    assert right.status_code == 200, right.text


@pytest.mark.parametrize(("method", "path"), CONTROL_ROUTES)
def test_every_control_route_refuses_a_missing_or_wrong_key(
    served: ServedEmulator, tally: Tally, method: str, path: str
) -> None:
    answers = [send(served, method, path, headers, {}) for headers in WRONG_KEYS]
    tally.add(requests=len(WRONG_KEYS))

    assert [(a.status_code, a.text) for a in answers] == [(401, UNAUTHORIZED)] * len(WRONG_KEYS)


def management_path(route: management._Route) -> str:
    path = route.path.replace("{id}", "some-id").replace("{category}", "tool")
    path = path.replace("{identifier:path}", "a/b:1.0.0@" + "0" * 32)
    return f"/plugin/{TENANT}{path}?page=1&page_size=10"


@pytest.mark.parametrize("route", management.ROUTES, ids=lambda route: route.path)
def test_every_management_route_refuses_a_missing_or_wrong_key(
    served: ServedEmulator, tally: Tally, route: management._Route
) -> None:
    path = management_path(route)

    answers = [send(served, route.method, path, headers, {}) for headers in WRONG_KEYS]
    right = send(served, route.method, path, [("X-Api-Key", KEY)], {})
    tally.add(requests=len(WRONG_KEYS) + 1)

    assert [(a.status_code, a.text) for a in answers] == [(401, UNAUTHORIZED)] * len(WRONG_KEYS)
    assert right.status_code in (200, 400), right.text
    assert right.text != NO_ROUTE


@pytest.mark.parametrize(("method", "path"), UNSERVED_DAEMON_ROUTES)
def test_the_daemons_other_routes_are_refused_with_or_without_a_key(
    served: ServedEmulator, tally: Tally, method: str, path: str
) -> None:
    answers = [send(served, method, path, headers, {}) for headers in [*WRONG_KEYS, []]]
    keyed = send(served, method, path, [("X-Api-Key", KEY)], {})
    tally.add(requests=len(answers) + 1)

    assert {(a.status_code, a.text) for a in [*answers, keyed]} == {(404, NO_ROUTE)}


def test_the_health_check_answers_without_a_key(served: ServedEmulator, tally: Tally) -> None:
    with served.client(timeout=10) as client:
        response = client.get("/health/check")
    tally.add(requests=1)

    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_the_openapi_document_refuses_a_missing_key(served: ServedEmulator, tally: Tally) -> None:
    with served.client(timeout=10) as client:
        response = client.get("/_emulator/openapi.json")
    tally.add(requests=1)

    assert response.status_code == 401
