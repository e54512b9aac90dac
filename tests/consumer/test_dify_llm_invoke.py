"""A consumer project's test: an llm/invoke sent as Dify sends it, and the app_id the plugin
saw. It uses only the installed package's public API and fixtures, and the same test body runs
against the in-process emulator and the live one."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest

from emulator.testing import DaemonEmulator, assert_dispatched, assert_plugin_saw

TENANT = "4a1c3e52-6f0b-4d8e-9a7c-2b5d8e1f0a93"
LLM_INVOKE = {
    "data": {
        "provider": "echo",
        "model_type": "llm",
        "model": "echo-1",
        "credentials": {"api_key": "echo-key"},
        "prompt_messages": [
            {"role": "system", "content": "You are a helpful assistant.", "name": None},
            {"role": "user", "content": "Hello echo plugin", "name": None},
        ],
        "model_parameters": {"temperature": 0.2},
        "tools": None,
        "stop": None,
        "stream": True,
    },
    "user_id": "user-7b21",
    "app_id": "app-9f3c",
}


@pytest.fixture(params=["daemon_emulator", "daemon_emulator_live"])
def daemon(request: pytest.FixtureRequest) -> DaemonEmulator:
    emulator: DaemonEmulator = request.getfixturevalue(request.param)
    return emulator


def invoke_llm(body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST the dispatch the way Dify's pooled client does, and read its event stream."""
    url = f"{os.environ['PLUGIN_DAEMON_URL']}/plugin/{TENANT}/dispatch/llm/invoke"
    headers = {
        "X-Api-Key": os.environ["PLUGIN_DAEMON_KEY"],
        "X-Plugin-ID": "emulator/echo",
        "Content-Type": "application/json",
        "Accept-Encoding": "gzip, deflate, br",
    }
    with (
        httpx.Client(trust_env=False, timeout=30) as client,
        client.stream("POST", url, content=json.dumps(body), headers=headers) as response,
    ):
        lines = [line.strip() for line in response.iter_lines() if line.strip()]
    return [json.loads(line.removeprefix("data:")) for line in lines]


def test_the_plugin_sees_the_app_id_dify_sent(daemon: DaemonEmulator) -> None:
    items = invoke_llm(LLM_INVOKE)

    assert items and all(item["code"] == 0 for item in items)
    assert_dispatched(daemon, "llm/invoke", app_id="app-9f3c")
    assert_plugin_saw(daemon, "llm/invoke", app_id="app-9f3c", user_id="user-7b21")
