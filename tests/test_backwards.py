"""Calls back into Dify: answered by handlers, by the emulator's storage, by Dify's inner API
(a fake on 127.0.0.1 here), or refused as the daemon refuses them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from emulator.backwards import (
    Backwards,
    BackwardsCall,
    BackwardsSettings,
)
from emulator.config import EXAMPLE_PLUGIN, Settings
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app
from helpers import FIXTURE_PLUGINS, KEY, TENANT, dispatch_headers, dispatch_url, payload

TOOL_ECHO = "emulator/tool_echo"
INNER_KEY = "inner-secret"


def storage_get_body(key: str) -> dict[str, Any]:
    body = payload("tool/invoke")
    body["data"]["tool"] = "storage_get"
    body["data"]["tool_parameters"] = {"key": key}
    return body


def items_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [json.loads(line[6:]) for line in response.text.split("\n\n") if line]


def texts_of(items: list[dict[str, Any]]) -> list[str]:
    return [item["data"]["message"]["text"] for item in items if item["code"] == 0]


def plugin_error(items: list[dict[str, Any]]) -> dict[str, Any]:
    last = items[-1]
    assert last["code"] == -500, last
    inner: dict[str, Any] = json.loads(last["message"])
    return inner


class _App:
    def __init__(self, backwards: Backwards, plugins: PluginSet) -> None:
        self.backwards = backwards
        settings = Settings(key=KEY, max_execution_timeout=30)
        self.app = create_app(settings, plugins, backwards=backwards)

    def post(self, route: str, body: dict[str, Any], plugin_id: str) -> httpx.Response:
        from starlette.testclient import TestClient

        with TestClient(self.app, base_url="http://daemon") as client:
            return client.post(dispatch_url(route), json=body, headers=dispatch_headers(plugin_id))


@pytest.fixture(scope="module")
def backwards_plugins() -> PluginSet:
    return PluginSet.load([FIXTURE_PLUGINS / "tool_echo", EXAMPLE_PLUGIN])


@pytest.fixture
def emulator(backwards_plugins: PluginSet) -> _App:
    return _App(Backwards(BackwardsSettings()), backwards_plugins)


# handlers ------------------------------------------------------------------------------------


def test_a_tool_reads_storage_from_a_handler_registered_in_the_test(emulator: _App) -> None:
    calls: list[BackwardsCall] = []

    @emulator.backwards.handle("storage")
    def storage(call: BackwardsCall) -> bytes:
        calls.append(call)
        return f"value of {call.request['key']}".encode()

    items = items_of(emulator.post("tool/invoke", storage_get_body("greeting"), TOOL_ECHO))

    assert texts_of(items) == ["value of greeting"]
    (call,) = calls
    assert call.invoke_type == "storage"
    assert call.request["opt"] == "get"
    assert call.request["tenant_id"] == TENANT
    assert call.request["user_id"] == "user-7b21"
    assert call.plugin_id == TOOL_ECHO
