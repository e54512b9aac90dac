"""Every silent case has a named kind: warned in the default mode, a 400 in --strict."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from emulator.config import Settings
from emulator.contract.findings import WarningKind
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app
from helpers import KEY, TENANT, dispatch_headers, payload

BODY = payload("llm/invoke", with_app_id=True)
for message in BODY["data"]["prompt_messages"]:
    del message["name"]  # Dify's name: null is harmless, and not what these rows test
CLEAN = json.dumps(BODY)


def with_data(**changes: Any) -> str:
    return json.dumps({**BODY, "data": {**BODY["data"], **changes}})


def with_top(**changes: Any) -> str:
    return json.dumps({**BODY, **changes})


# kind: (body, Content-Type, path tenant, what the daemon itself answers, the JSON path named)
CASES: dict[WarningKind, tuple[str | bytes, str, str, int, str]] = {
    WarningKind.UNKNOWN_KEY: (
        with_data(surprise=1),
        "application/json",
        TENANT,
        200,
        "$.data.surprise",
    ),
    WarningKind.KEY_CASE: (
        CLEAN.replace('"app_id"', '"APP_ID"'),
        "application/json",
        TENANT,
        200,
        "$.app_id",
    ),
    WarningKind.DUPLICATE_KEY: (
        CLEAN[:-1] + ', "app_id": "again"}',
        "application/json",
        TENANT,
        200,
        "$.app_id",
    ),
    WarningKind.TYPE_MISMATCH: (
        with_data(stream="yes"),
        "application/json",
        TENANT,
        200,
        "$.data.stream",
    ),
    WarningKind.ID_COERCED: (with_top(app_id=123), "application/json", TENANT, 200, "$.app_id"),
    WarningKind.NULL_TO_ZERO: (
        with_data(stream=None),
        "application/json",
        TENANT,
        200,
        "$.data.stream",
    ),
    WarningKind.PRECISION_LOST: (
        with_data(credentials={"seed": 9007199254740993}),
        "application/json",
        TENANT,
        200,
        "$.data.credentials.seed",
    ),
    WarningKind.NUMBER_OVERFLOW: (
        with_data(credentials={"x": 1}).replace('"x": 1', '"x": 1e400'),
        "application/json",
        TENANT,
        200,
        "$.data.credentials.x",
    ),
    WarningKind.DECODE_ABORTED: (
        with_data(prompt_messages=[{"role": "user"}]),
        "application/json",
        TENANT,
        200,
        "$.data.prompt_messages[0]",
    ),
    WarningKind.MALFORMED_JSON: ('{"data": ', "application/json", TENANT, 400, "$"),
    WarningKind.TRAILING_DATA: (CLEAN + " and more", "application/json", TENANT, 200, "$"),
    WarningKind.INVALID_UTF8: (
        CLEAN.replace("app-9f3c", "app-\udcff").encode("utf-8", "surrogateescape"),
        "application/json",
        TENANT,
        200,
        "$",
    ),
    WarningKind.BODY_IGNORED: (CLEAN, "text/plain", TENANT, 400, "$"),
    WarningKind.IGNORED_FIELD: (
        with_top(plugin_id="a/b"),
        "application/json",
        TENANT,
        200,
        "$.plugin_id",
    ),
    WarningKind.TENANT_OVERRIDDEN: (
        with_top(tenant_id="other"),
        "application/json",
        TENANT,
        200,
        "$.tenant_id",
    ),
    WarningKind.SDK_REJECTS: (
        with_data(credentials=None),
        "application/json",
        TENANT,
        200,
        "$.data",
    ),
    WarningKind.UNVALIDATED_ELEMENT: (
        with_data(prompt_messages=[{"role": "bogus", "content": "hi"}]),
        "application/json",
        TENANT,
        200,
        "$.data.prompt_messages[0]",
    ),
    WarningKind.TENANT_NOT_UUID: (CLEAN, "application/json", "tenant-1", 200, "$.tenant_id"),
}


def test_the_table_has_every_kind() -> None:
    assert set(CASES) == set(WarningKind)


@pytest.fixture(scope="module")
def clients(plugins: PluginSet) -> Iterator[dict[str, httpx.Client]]:
    with (
        TestClient(create_app(Settings(key=KEY), plugins)) as default,
        TestClient(create_app(Settings(key=KEY, strict=True), plugins)) as strict,
    ):
        yield {"default": default, "strict": strict}


def send(client: httpx.Client, kind: WarningKind) -> httpx.Response:
    body, content_type, tenant, _, _ = CASES[kind]
    headers = {**dispatch_headers(), "Content-Type": content_type}
    return client.post(f"/plugin/{tenant}/dispatch/llm/invoke", content=body, headers=headers)


def test_a_clean_body_gets_no_warning_in_either_mode(clients: dict[str, httpx.Client]) -> None:
    for client in clients.values():
        response = client.post(
            f"/plugin/{TENANT}/dispatch/llm/invoke", content=CLEAN, headers=dispatch_headers()
        )
        assert response.status_code == 200 and "x-emulator-warning" not in response.headers


@pytest.mark.parametrize("kind", list(WarningKind))
def test_default_mode_answers_as_the_daemon_and_names_the_kind(
    clients: dict[str, httpx.Client], kind: WarningKind
) -> None:
    _, _, _, status, path = CASES[kind]

    response = send(clients["default"], kind)

    assert response.status_code == status
    assert any(
        w.startswith(f"{kind} {path}: expected ")
        for w in response.headers.get_list("x-emulator-warning")
    )


@pytest.mark.parametrize("kind", list(WarningKind))
def test_strict_mode_refuses_with_the_path_the_expected_and_the_actual(
    clients: dict[str, httpx.Client], kind: WarningKind
) -> None:
    _, _, _, status, path = CASES[kind]

    response = send(clients["strict"], kind)

    assert response.status_code == 400
    error = json.loads(response.json()["message"])
    assert error["error_type"] == "PluginDaemonBadRequestError"
    if status == 200:  # where the daemon refuses anyway, its own validator text comes first
        line = next(line for line in error["message"].splitlines() if line.startswith(f"{kind} "))
        assert line.startswith(f"{kind} {path}: expected ") and ", got " in line
