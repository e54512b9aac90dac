"""One wrapper, two families: tool/invoke and llm/invoke hand their plugins the same ids.

Both plugins are served by one app. Each reports the session it saw (tool_echo's echo_ids in
its first JSON message, the bundled echo model in its first chunk); the ids must agree with
each other, with what was sent, and with what the journal recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from dify_client import items
from emulator.config import EXAMPLE_PLUGIN, Settings
from emulator.journal import Journal
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app
from helpers import ECHO, FIXTURE_PLUGINS, dispatch_headers, dispatch_url, payload

TOOL_ECHO = "emulator/tool_echo"
IDS = ("app_id", "conversation_id", "message_id")
PRESENT = {
    "user_id": "user-7b21",
    "conversation_id": "conv-51e0",
    "message_id": "msg-2d7a",
    "app_id": "app-9f3c",
}
WRAPPERS = {
    "all_present": PRESENT,
    "all_absent": {},
    "explicit_nulls": dict.fromkeys(PRESENT),
}


@pytest.fixture(scope="module")
def journal() -> Journal:
    return Journal()


@pytest.fixture(scope="module")
def client(settings: Settings, journal: Journal) -> Iterator[httpx.Client]:
    plugins = PluginSet.load([EXAMPLE_PLUGIN, FIXTURE_PLUGINS / "tool_echo"])
    app = create_app(settings, plugins, journal=journal)
    with TestClient(app, base_url="http://daemon") as c:
        yield c


def dispatch(client: httpx.Client, route: str, plugin_id: str, body: dict[str, Any]) -> list[Any]:
    response = client.post(
        dispatch_url(route), content=json.dumps(body), headers=dispatch_headers(plugin_id)
    )
    assert response.status_code == 200, response.text
    return list(items(response.content))


def tool_saw(client: httpx.Client, wrapper: dict[str, Any]) -> dict[str, Any]:
    data = {
        "provider": "tool_echo",
        "tool": "echo_ids",
        "credentials": {"api_key": "good"},
        "credential_type": "api-key",
        "tool_parameters": {"text": "which ids?"},
    }
    first = dispatch(client, "tool/invoke", TOOL_ECHO, {**wrapper, "data": data})[0]
    assert first["type"] == "json"
    return first["message"]["json_object"]["session"]  # type: ignore[no-any-return]


def model_saw(client: httpx.Client, wrapper: dict[str, Any]) -> dict[str, Any]:
    body = {**wrapper, "data": payload("llm/invoke")["data"]}
    first = dispatch(client, "llm/invoke", ECHO, body)[0]
    return json.loads(first["delta"]["message"]["content"])  # type: ignore[no-any-return]


def only(session: dict[str, Any], keys: tuple[str, ...] = IDS) -> dict[str, Any]:
    return {key: session[key] for key in keys}


@pytest.mark.parametrize("wrapper", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_tool_and_model_plugins_see_the_same_ids(
    client: httpx.Client, wrapper: dict[str, Any]
) -> None:
    tool = tool_saw(client, wrapper)
    model = model_saw(client, wrapper)

    sent = {key: wrapper.get(key) for key in IDS}
    assert only(tool) == only(model) == sent


@pytest.mark.parametrize("wrapper", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_both_plugins_see_the_user_id_the_daemon_forwards(
    client: httpx.Client, wrapper: dict[str, Any]
) -> None:
    tool = tool_saw(client, wrapper)
    model = model_saw(client, wrapper)

    # The daemon's user_id is a Go string: absent or null, it forwards "".
    assert tool["user_id"] == model["user_id"] == (wrapper.get("user_id") or "")


@pytest.mark.parametrize("wrapper", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_the_journal_records_what_each_plugin_reported(
    client: httpx.Client, journal: Journal, wrapper: dict[str, Any]
) -> None:
    journal.clear()
    tool = tool_saw(client, wrapper)
    model = model_saw(client, wrapper)
    assert journal.settle()

    (tool_dispatch,) = journal.dispatches(route="tool/invoke", plugin_id=TOOL_ECHO)
    (model_dispatch,) = journal.dispatches(route="llm/invoke", plugin_id=ECHO)
    assert tool_dispatch.session is not None and model_dispatch.session is not None
    keys = (*IDS, "session_id", "user_id")
    assert only(asdict(tool_dispatch.session), keys) == only(tool, keys)
    assert only(asdict(model_dispatch.session), keys) == only(model, keys)
