"""The case that started the project: app_id from Dify's body to get_current_session()."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from dify_client import items
from helpers import dispatch_headers, dispatch_url, payload


def session_seen(body: bytes) -> dict[str, Any]:
    """The echo plugin's first llm chunk is the session it saw, as JSON."""
    first = next(iter(items(body)))
    return json.loads(first["delta"]["message"]["content"])  # type: ignore[no-any-return]


def invoke_llm(client: httpx.Client, body: dict[str, Any] | str) -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    return client.post(dispatch_url("llm/invoke"), content=content, headers=dispatch_headers())


def test_the_plugin_sees_the_app_id_dify_sent(any_client: httpx.Client) -> None:
    response = invoke_llm(any_client, payload("llm/invoke", with_app_id=True))

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert session_seen(response.content)["app_id"] == "app-9f3c"


def test_without_the_key_the_plugin_sees_none(any_client: httpx.Client) -> None:
    body = payload("llm/invoke")
    assert "app_id" not in body

    assert session_seen(invoke_llm(any_client, body).content)["app_id"] is None


def test_null_app_id_reaches_the_plugin_as_none(any_client: httpx.Client) -> None:
    body = {**payload("llm/invoke"), "app_id": None}

    assert session_seen(invoke_llm(any_client, body).content)["app_id"] is None


@pytest.mark.parametrize("wrong", [123, True, {"id": "x"}, ["x"]])
def test_a_non_string_app_id_becomes_empty_as_in_go(any_client: httpx.Client, wrong: Any) -> None:
    body = {**payload("llm/invoke"), "app_id": wrong}

    response = invoke_llm(any_client, body)

    assert session_seen(response.content)["app_id"] == ""
    assert any(
        "id_coerced $.app_id" in value for value in response.headers.get_list("x-emulator-warning")
    )


def test_keys_match_case_insensitively_as_in_go(any_client: httpx.Client) -> None:
    body = {**payload("llm/invoke"), "APP_ID": "app-upper"}

    response = invoke_llm(any_client, body)

    assert session_seen(response.content)["app_id"] == "app-upper"
    assert (
        "key_case $.app_id: expected key 'app_id', got 'APP_ID'; Go matches it case-insensitively"
        in (response.headers.get_list("x-emulator-warning"))
    )


@pytest.mark.parametrize("field", ["conversation_id", "message_id", "endpoint_id"])
def test_the_other_nullable_ids_travel_the_same_road(any_client: httpx.Client, field: str) -> None:
    absent = session_seen(invoke_llm(any_client, payload("llm/invoke")).content)
    given = session_seen(invoke_llm(any_client, {**payload("llm/invoke"), field: "id-7"}).content)
    coerced = session_seen(invoke_llm(any_client, {**payload("llm/invoke"), field: 7}).content)

    assert (absent[field], given[field], coerced[field]) == (None, "id-7", "")


def test_concurrent_streams_keep_their_own_app_id(live_url: str) -> None:
    app_ids = [f"app-{n:02d}" for n in range(50)]

    async def invoke(client: httpx.AsyncClient, app_id: str) -> str:
        body = {**payload("llm/invoke"), "app_id": app_id}
        body["data"]["model_parameters"] = {"chunks": 5, "delay_ms": 5}
        response = await client.post(
            dispatch_url("llm/invoke"), content=json.dumps(body), headers=dispatch_headers()
        )
        return session_seen(response.content)["app_id"]  # type: ignore[no-any-return]

    async def invoke_all() -> list[str]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=live_url, timeout=60, limits=limits) as client:
            return await asyncio.gather(*(invoke(client, app_id) for app_id in app_ids))

    assert asyncio.run(invoke_all()) == app_ids
