"""Calls back into Dify: answered by handlers, by the emulator's storage, by Dify's inner API
(a fake on 127.0.0.1 here), or refused as the daemon refuses them."""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from emulator.backwards import (
    Backwards,
    BackwardsCall,
    BackwardsSettings,
    Caller,
    CallRecord,
    go_format,
    inner_api_url,
    length_prefixed,
    length_prefixed_chunks,
    permission_denial,
    session_traceparent,
)
from emulator.config import RuntimeChoice, Settings
from emulator.contract.gojson import parse_value
from emulator.journal import Journal
from emulator.runtime.registry import PluginSet, load_plugin
from emulator.server.app import create_app
from emulator.server.streaming import CallsBack
from emulator.sessions import Invoke
from helpers import FIXTURE_PLUGINS, KEY, TENANT, dispatch_headers, dispatch_url, payload

TOOL_ECHO = "emulator/tool_echo"
RAISING = "tests/raising"
INNER_KEY = "inner-secret"

# storage_get, rewritten: a key "llm:<prompt>" asks Dify's LLM instead of reading storage.
CALLING_TOOL = """
from dify_plugin import Tool
from dify_plugin.entities.model.llm import LLMModelConfig
from dify_plugin.entities.model.message import UserPromptMessage


class StorageGetTool(Tool):
    def _invoke(self, tool_parameters):
        key = tool_parameters["key"]
        if not key.startswith("llm:"):
            yield self.create_text_message(self.session.storage.get(key).decode())
            return
        config = LLMModelConfig(provider="openai", model="gpt-4o", mode="chat")
        prompt = [UserPromptMessage(content=key[4:])]
        for chunk in self.session.model.llm.invoke(config, prompt, stream=True):
            yield self.create_text_message(chunk.delta.message.content)
"""
STORAGE_AND_LLM = """
  permission:
    storage:
      enabled: true
      size: 1048576
    model:
      enabled: true
      llm: true
"""


LLM_REQUEST: dict[str, Any] = {
    "provider": "openai",
    "model": "gpt-4o",
    "model_type": "llm",
    "mode": "chat",
    "completion_params": {},
    "prompt_messages": [{"role": "user", "content": "hi", "name": None}],
    "tools": None,
    "stop": None,
    "stream": True,
}
RERANK_REQUEST = {"provider": "p", "model": "m", "query": "q", "docs": ["a"]}
EMBEDDING_REQUEST = {"provider": "p", "model": "m", "texts": ["a"], "input_type": "query"}
RERANKED = {"model": "m", "docs": [{"index": 0, "text": "a", "score": 0.5}]}
TOOL_REQUEST = {"tool_type": "builtin", "provider": "p", "tool": "t", "tool_parameters": {}}


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
    """The plugin's error, out of the daemon's PluginInvokeError item that carries it."""
    last = items[-1]
    assert last["code"] == -500, last
    outer = json.loads(last["message"])
    assert outer["error_type"] == "PluginInvokeError", outer
    inner: dict[str, Any] = json.loads(outer["message"])
    return inner


class Emulator:
    """The app in process with its own backwards dispatcher and journal."""

    def __init__(self, plugins: PluginSet, settings: BackwardsSettings | None = None) -> None:
        self.backwards = Backwards(settings or BackwardsSettings())
        self.journal = Journal()
        settings_ = Settings(key=KEY, max_execution_timeout=30)
        self.app = create_app(settings_, plugins, self.journal, backwards=self.backwards)

    def post(self, route: str, body: dict[str, Any], plugin_id: str) -> httpx.Response:
        with TestClient(self.app, base_url="http://daemon") as client:
            return client.post(dispatch_url(route), json=body, headers=dispatch_headers(plugin_id))

    def storage_get(self, key: str) -> list[dict[str, Any]]:
        return items_of(self.post("tool/invoke", storage_get_body(key), TOOL_ECHO))


@pytest.fixture(scope="module")
def tool_echo() -> PluginSet:
    return PluginSet.load([FIXTURE_PLUGINS / "tool_echo", FIXTURE_PLUGINS / "raising"])


@pytest.fixture
def emulator(tool_echo: PluginSet) -> Emulator:
    return Emulator(tool_echo)


def calling_plugin(tmp_path: Path, permission: str) -> PluginSet:
    """tool_echo with storage_get rewritten (CALLING_TOOL) and this manifest permission."""
    directory = Path(shutil.copytree(FIXTURE_PLUGINS / "tool_echo", tmp_path / "tool_echo"))
    (directory / "tools" / "storage_get.py").write_text(CALLING_TOOL)
    manifest = directory / "manifest.yaml"
    text = manifest.read_text()
    start = text.index("  permission:")
    end = text.index("plugins:")
    manifest.write_text(text[:start] + permission.lstrip("\n") + text[end:])
    return PluginSet.load([directory])


# handlers ------------------------------------------------------------------------------------


def test_a_tool_reads_storage_from_a_handler_registered_in_the_test(emulator: Emulator) -> None:
    calls: list[BackwardsCall] = []

    @emulator.backwards.handle("storage")
    def storage(call: BackwardsCall) -> bytes:
        calls.append(call)
        return f"value of {call.request['key']}".encode()

    items = emulator.storage_get("greeting")

    assert texts_of(items) == ["value of greeting"]
    (call,) = calls
    assert (call.invoke_type, call.request["opt"], call.request["key"]) == (
        "storage",
        "get",
        "greeting",
    )
    assert (call.tenant_id, call.request["user_id"], call.plugin_id) == (
        TENANT,
        "user-7b21",
        TOOL_ECHO,
    )


def test_the_journal_records_each_call_and_its_outcome(emulator: Emulator) -> None:
    emulator.backwards.handle("storage", lambda call: b"hi")

    emulator.storage_get("greeting")

    (dispatch,) = emulator.journal.dispatches()
    (call,) = dispatch.backwards
    assert call.to_json() == {
        "type": "storage",
        "backwards_request_id": call.request_id,
        "request": {"opt": "get", "key": "greeting"},
        "answered_by": "handler",
        "responses": 1,
        "error": None,
        "ended": True,
    }
    assert dispatch.to_json()["backwards"] == [call.to_json()]


def test_a_handler_that_raises_gives_the_plugin_an_error_and_the_emulator_serves_on(
    emulator: Emulator,
) -> None:
    def broken(call: BackwardsCall) -> bytes:
        raise RuntimeError("the test's storage is down")

    emulator.backwards.handle("storage", broken)

    error = plugin_error(emulator.storage_get("greeting"))

    assert error["error_type"] == "Exception"
    assert error["message"] == "the test's storage is down"
    emulator.backwards.handle("storage", lambda call: b"back again")
    assert texts_of(emulator.storage_get("greeting")) == ["back again"]


def test_a_handler_for_a_streamed_type_answers_chunk_by_chunk(tmp_path: Path) -> None:
    emulator = Emulator(calling_plugin(tmp_path, STORAGE_AND_LLM))
    chunk: dict[str, Any] = {"model": "gpt-4o", "prompt_messages": [], "system_fingerprint": None}

    @emulator.backwards.handle("llm")
    def llm(call: BackwardsCall) -> Iterator[dict[str, Any]]:
        prompt = call.request["prompt_messages"][0]["content"]
        for word in prompt.split():
            message = {"role": "assistant", "content": word, "name": None, "tool_calls": []}
            yield {**chunk, "delta": {"index": 0, "message": message}}

    items = emulator.storage_get("llm:two words")

    assert texts_of(items) == ["two", "words"]


LLM_ALLOWED = {"enabled": True, "llm": True}


def llm_permitted(directory: Path) -> Caller:
    return permitting(directory, {"model": LLM_ALLOWED})


def test_a_handlers_answers_carry_the_daemons_message_per_type(tmp_path: Path) -> None:
    backwards = Backwards(BackwardsSettings())
    backwards.handle("llm", lambda call: llm_chunk("one"))
    backwards.handle("rerank", lambda call: [RERANKED])
    origin = permitting(tmp_path, {"model": {"enabled": True, "llm": True, "rerank": True}})

    assert call(backwards, "llm", LLM_REQUEST, origin)[0][:2] == ("response", "stream")
    assert call(backwards, "rerank", RERANK_REQUEST, origin)[0] == ("response", "struct", RERANKED)


def test_a_handlers_answers_are_re_encoded_as_the_daemon_re_encodes_difys(
    tmp_path: Path,
) -> None:
    backwards = Backwards(BackwardsSettings())
    message = {"role": "assistant", "content": "w"}
    backwards.handle("llm", lambda call: {"model": "m", "delta": {"index": 0, "message": message}})

    (_, _, chunk), _ = call(backwards, "llm", LLM_REQUEST, llm_permitted(tmp_path))

    # LLMResultChunk's Go encoding: every field, and the always-empty prompt_messages.
    assert chunk == {
        "model": "m",
        "system_fingerprint": "",
        "delta": {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "w",
                "name": "",
                "tool_calls": None,
                "tool_call_id": "",
            },
            "usage": None,
            "finish_reason": None,
        },
        "prompt_messages": [],
    }


def test_a_handlers_answer_the_daemon_would_refuse_fails_the_call(tmp_path: Path) -> None:
    backwards = Backwards(BackwardsSettings())
    backwards.handle("rerank", lambda call: {"model": "m"})
    origin = permitting(tmp_path, {"model": {"enabled": True, "rerank": True}})

    events = call(backwards, "rerank", RERANK_REQUEST, origin)

    assert events[0] == (
        "error",
        "invoke rerank model failed: validate request failed: Key: 'RerankResult.Docs'"
        " Error:Field validation for 'Docs' failed on the 'required' tag",
        None,
    )


def test_a_handler_failing_mid_stream_fails_as_a_read_of_difys_stream(tmp_path: Path) -> None:
    backwards = Backwards(BackwardsSettings())

    @backwards.handle("llm")
    def llm(call: BackwardsCall) -> Iterator[dict[str, Any]]:
        yield llm_chunk("one")
        raise ConnectionError("stream cut")

    events = call(backwards, "llm", LLM_REQUEST, llm_permitted(tmp_path))

    assert [event for event, _, _ in events] == ["response", "error", "end"]
    assert events[1][1] == "read llm model failed: stream cut"


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ("text", "invoke llm model failed: a handler returns a mapping, bytes, an iterable"),
        ([1], "read llm model failed: a handler's answers are mappings, not 1"),
    ],
)
def test_a_handler_returning_what_cannot_be_sent_fails_the_call(
    tmp_path: Path, result: Any, message: str
) -> None:
    backwards = Backwards(BackwardsSettings())
    backwards.handle("llm", lambda call: result)

    events = call(backwards, "llm", LLM_REQUEST, llm_permitted(tmp_path))

    assert events[-2][0] == "error" and events[-2][1].startswith(message)


def test_a_handler_raising_a_bare_exception_names_its_type(tmp_path: Path) -> None:
    backwards = Backwards(BackwardsSettings())

    def broken(call: BackwardsCall) -> None:
        raise KeyError

    backwards.handle("llm", broken)

    assert call(backwards, "llm", LLM_REQUEST, llm_permitted(tmp_path))[0][1] == (
        "invoke llm model failed: KeyError"
    )


def test_a_handler_sees_the_request_as_the_daemon_would_send_it_to_dify(tmp_path: Path) -> None:
    backwards = Backwards(BackwardsSettings())
    seen: list[dict[str, Any]] = []
    backwards.handle("llm", lambda call: seen.append(call.request))

    call(backwards, "llm", {**LLM_REQUEST, "unknown": 1}, llm_permitted(tmp_path))

    (request,) = seen
    assert "model_type" not in request and "unknown" not in request
    assert (request["tenant_id"], request["user_id"], request["type"]) == (TENANT, "user-1", "llm")


@pytest.mark.parametrize(
    ("invoke_type", "request_", "message"),
    [
        ("tool", {**TOOL_REQUEST, "tool_type": "plugin"},
         "error validating struct: Key: 'InvokeToolRequest.ToolType' Error:Field validation"
         " for 'ToolType' failed on the 'tool_type' tag"),
        ("llm", {**LLM_REQUEST, "mode": ""},
         "error validating struct: Key: 'InvokeLLMRequest.InvokeLLMSchema.Mode' Error:Field"
         " validation for 'Mode' failed on the 'required' tag"),
        ("fetch_app", {},
         "error validating struct: Key: 'FetchAppRequest.AppId' Error:Field validation for"
         " 'AppId' failed on the 'required' tag"),
    ],
)  # fmt: skip
def test_a_request_the_daemons_types_refuse_is_refused_before_anything_answers(
    tmp_path: Path, invoke_type: str, request_: dict[str, Any], message: str
) -> None:
    backwards = Backwards(BackwardsSettings())
    answered: list[BackwardsCall] = []
    backwards.handle(invoke_type, answered.append)
    origin = permitting(
        tmp_path, {"tool": {"enabled": True}, "app": {"enabled": True}, "model": LLM_ALLOWED}
    )

    events, record = call_recorded(backwards, invoke_type, request_, origin)

    assert events == [
        ("error", f"unmarshal backwards invoke request failed: {message}", None),
        ("end", "", None),
    ]
    assert answered == []
    assert record.answered_by == "invalid"


def test_handlers_are_registered_per_known_invoke_type() -> None:
    with pytest.raises(ValueError, match="unknown invoke type 'stroage'"):
        Backwards(BackwardsSettings()).handle("stroage", lambda call: None)


# the daemon's own storage ---------------------------------------------------------------------


def test_storage_is_served_by_the_emulator_when_no_handler_is_registered(
    emulator: Emulator,
) -> None:
    emulator.backwards.storage.set(TENANT, TOOL_ECHO, "greeting", b"stored")

    assert texts_of(emulator.storage_get("greeting")) == ["stored"]


def test_a_key_never_set_gets_the_daemons_error(emulator: Emulator) -> None:
    error = plugin_error(emulator.storage_get("never-set"))

    assert error["message"] == (
        "load data failed, please check if the key is correct or you have not set it"
    )


def test_storage_is_kept_per_tenant_and_plugin(emulator: Emulator) -> None:
    emulator.backwards.storage.set("another-tenant", TOOL_ECHO, "greeting", b"theirs")
    emulator.backwards.storage.set(TENANT, "emulator/other", "greeting", b"theirs")

    assert plugin_error(emulator.storage_get("greeting"))["message"].startswith("load data failed")


class Replies:
    """A `send` that collects the backwards_response lines, and waits for the `end`."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.ended = threading.Event()

    def __call__(self, line: str) -> None:
        self.lines.append(json.loads(line))
        if self.lines[-1]["data"]["event"] == "end":
            self.ended.set()

    def events(self) -> list[tuple[str, str, Any]]:
        assert self.ended.wait(5), "the call never ended"
        return [(d["event"], d["message"], d["data"]) for d in (x["data"] for x in self.lines)]


def caller(access_type: str = "tool", directory: Path | None = None) -> Caller:
    return Caller(
        session_id="session-1",
        tenant_id=TENANT,
        user_id="user-1",
        access_type=access_type,
        plugin_id=TOOL_ECHO,
        plugin_directory=directory or FIXTURE_PLUGINS / "tool_echo",
        app_id="app-1",
    )


def call(
    backwards: Backwards,
    invoke_type: str,
    request: dict[str, Any],
    origin: Caller | None = None,
) -> list[tuple[str, str, Any]]:
    return call_recorded(backwards, invoke_type, request, origin)[0]


def call_recorded(
    backwards: Backwards,
    invoke_type: str,
    request: dict[str, Any],
    origin: Caller | None = None,
) -> tuple[list[tuple[str, str, Any]], CallRecord]:
    """The events the plugin got for one call, and what the journal recorded of it."""
    replies = Replies()
    data = {"type": invoke_type, "backwards_request_id": "req-1", "request": request}
    outcome = backwards.dispatch(parse_value(json.dumps(data)), origin or caller(), replies)
    assert not isinstance(outcome, str), outcome
    return replies.events(), outcome


def test_storage_set_exist_del_answer_as_the_daemon_does() -> None:
    backwards = Backwards(BackwardsSettings())

    assert call(backwards, "storage", {"opt": "set", "key": "k", "value": b"v".hex()}) == [
        ("response", "struct", {"data": "ok"}),
        ("end", "", None),
    ]
    assert call(backwards, "storage", {"opt": "exist", "key": "k"})[0] == (
        "response",
        "struct",
        {"data": True, "exist_num": 1},
    )
    assert call(backwards, "storage", {"opt": "get", "key": "k"})[0][2] == {"data": "76"}
    assert call(backwards, "storage", {"opt": "del", "key": "k"})[0][2] == {
        "data": "ok",
        "deleted_num": 1,
    }
    assert call(backwards, "storage", {"opt": "exist", "key": "k"})[0][2] == {
        "data": False,
        "exist_num": 0,
    }


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            {"opt": "set", "key": "k", "value": "zz"},
            "decode data failed: encoding/hex: invalid byte: U+007A 'z'",
        ),
        (
            {"opt": "set", "key": "k", "value": "abc"},
            "decode data failed: encoding/hex: odd length hex string",
        ),
        (
            {"opt": "fetch", "key": "k"},
            "unmarshal backwards invoke request failed: error validating struct: Key: "
            "'InvokeStorageRequest.Opt' Error:Field validation for 'Opt' failed on the "
            "'storage_opt' tag",
        ),
        (
            {"opt": "get"},
            "unmarshal backwards invoke request failed: error validating struct: Key: "
            "'InvokeStorageRequest.Key' Error:Field validation for 'Key' failed on the "
            "'required' tag",
        ),
        (
            {"opt": "get", "key": 5},
            "unmarshal backwards invoke request failed: error decoding map: 1 error(s) "
            "decoding:\n\n* 'key' expected type 'string', got unconvertible type 'float64', "
            "value: '5'",
        ),
    ],
)
def test_bad_storage_requests_get_the_daemons_errors(
    request_: dict[str, Any], message: str
) -> None:
    assert call(Backwards(BackwardsSettings()), "storage", request_) == [
        ("error", message, None),
        ("end", "", None),
    ]


def test_storage_keeps_the_daemons_limits() -> None:
    backwards = Backwards(BackwardsSettings())
    quota = 1048576  # tool_echo's manifest: permission.storage.size
    half = "00" * (quota // 2)

    assert call(backwards, "storage", {"opt": "set", "key": "a", "value": half})[0][0] == "response"
    assert call(backwards, "storage", {"opt": "set", "key": "a", "value": half})[0][0] == "response"
    assert call(backwards, "storage", {"opt": "set", "key": "b", "value": half + "00"})[0] == (
        "error",
        "save data failed: allocated size is greater than max storage size",
        None,
    )
    assert call(backwards, "storage", {"opt": "set", "key": "k" * 257, "value": ""})[0][1] == (
        "save data failed: key length must be less than 256 characters"
    )


@pytest.mark.parametrize(
    ("opt", "message"),
    [
        ("get", "load data failed, please check if the key is correct or you have not set it"),
        ("set", "save data failed: invalid key: path traversal attempt detected"),
        ("del", "delete data failed: invalid key: path traversal attempt detected"),
        ("exist", "exist data failed: invalid key: path traversal attempt detected"),
    ],
)
def test_a_key_that_leaves_the_plugins_folder_is_refused(opt: str, message: str) -> None:
    backwards = Backwards(BackwardsSettings())

    events = call(backwards, "storage", {"opt": opt, "key": "../other/secret", "value": ""})

    assert events[0] == ("error", message, None)


def test_a_key_that_cleans_to_a_plain_path_is_allowed() -> None:
    backwards = Backwards(BackwardsSettings())

    call(backwards, "storage", {"opt": "set", "key": "a/../b//c", "value": "00"})

    assert backwards.storage.get(TENANT, TOOL_ECHO, "a/../b//c") == b"\x00"


# refusals ------------------------------------------------------------------------------------


def test_a_model_plugins_call_back_is_refused_whatever_is_configured(
    emulator: Emulator,
) -> None:
    answered: list[BackwardsCall] = []
    emulator.backwards.handle("storage", answered.append)
    body = payload("llm/invoke")
    body["data"].update(provider="raising", model="backwards")

    items = items_of(emulator.post("llm/invoke", body, RAISING))

    error = plugin_error(items)
    assert error["error_type"] == "Exception"
    assert error["message"] == "you can not invoke dify from model"
    assert answered == []
    (dispatch,) = emulator.journal.dispatches()
    assert dispatch.backwards[0].answered_by == "refused"


def test_with_neither_a_handler_nor_dify_a_call_is_refused(tmp_path: Path) -> None:
    emulator = Emulator(calling_plugin(tmp_path, STORAGE_AND_LLM))

    error = plugin_error(emulator.storage_get("llm:hello"))

    assert error["error_type"] == "Exception"
    assert error["message"] == (
        "invoke llm model failed: emulator: nothing answers 'llm' calls: register a handler"
        " for it or set DIFY_INNER_API_URL"
    )


def test_a_call_the_manifest_does_not_permit_is_denied(tmp_path: Path) -> None:
    storage_only = "\n  permission:\n    storage:\n      enabled: true\n"
    emulator = Emulator(calling_plugin(tmp_path, storage_only))
    emulator.backwards.handle("llm", lambda call: [])

    error = plugin_error(emulator.storage_get("llm:hello"))

    assert error["message"] == "permission denied, you need to enable llm access in plugin manifest"


@pytest.mark.parametrize(
    ("invoke_type", "permission", "denial"),
    [
        ("storage", {}, "permission denied, you need to enable storage access in plugin manifest"),
        ("storage", {"storage": {"enabled": True}}, None),
        ("llm", {"model": {"enabled": True}}, "you need to enable llm access"),
        ("llm", {"model": {"llm": True}}, "you need to enable llm access"),
        ("system_summary", {"model": {"enabled": True, "llm": True}}, None),
        ("multimodal_embedding", {"model": {"enabled": True}}, "text-embedding access"),
        ("node_question_classifier", {"node": {"enabled": True}}, None),
        ("fetch_app", {"tool": {"enabled": True}}, "you need to enable app access"),
        ("upload_file", {}, None),
        ("encrypt", {"tool": {"enabled": True}}, "unsupported invoke type: encrypt"),
    ],
)
def test_permissions_are_checked_per_invoke_type(
    tmp_path: Path, invoke_type: str, permission: dict[str, Any], denial: str | None
) -> None:
    manifest = {"resource": {"memory": 1, "permission": permission}}
    (tmp_path / "manifest.yaml").write_text(json.dumps(manifest))

    found = permission_denial(invoke_type, tmp_path)

    assert found == denial if denial is None else denial in (found or "")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "invoke request is empty"),
        ([1], "unmarshal invoke request failed: json: cannot unmarshal array into Go value of"
         " type map[string]interface {}"),
        ({"backwards_request_id": "r", "request": {}},
         "invoke request missing type: map[backwards_request_id:r request:map[]]"),
        ({"type": "storage", "request": {"n": 1.5}},
         "invoke request missing request_id: map[request:map[n:%!s(float64=1.5)] type:storage]"),
        ({"type": "storage", "backwards_request_id": "r", "request": "x"},
         "invoke request missing request: map[backwards_request_id:r request:x type:storage]"),
    ],
)  # fmt: skip
def test_an_invoke_frame_the_daemon_cannot_read_ends_the_stream(data: Any, message: str) -> None:
    journal = Journal()
    record = journal.open("tool/invoke", TENANT, TOOL_ECHO, [])
    calls = CallsBack(Backwards(BackwardsSettings()), caller(), Replies(), record)

    item = calls.answer(Invoke(parse_value(json.dumps(data))))

    assert item is not None and item.is_error
    assert plugin_error([json.loads(item.envelope)]) == {
        "error_type": "invoke_dify_error",
        "message": f"invoke dify failed: {message}",
    }


def test_go_format_prints_as_fmt_does() -> None:
    value = {"b": [True, None, 1e21, 2.0], "a": "x"}

    assert go_format(value) == "map[a:x b:[true <nil> 1e+21 2]]"
    # Printed by Go 1.19's fmt: %v of a float64 is the shortest %g, exponents from 1e6.
    floats = [1e6, 123456789.0, 100000.0, 0.0001, 0.00001, -2.0, -0.0, 2.0**53]
    assert (
        go_format(floats)
        == "[1e+06 1.23456789e+08 100000 0.0001 1e-05 -2 -0 9.007199254740992e+15]"
    )
    # task.go formats a bad invoke request with %s: non-strings print as bad verbs.
    assert go_format({"type": 5.0, "end": True, "id": None, "request": {}}, "s") == (
        "map[end:%!s(bool=true) id:<nil> request:map[] type:%!s(float64=5)]"
    )


# forwarding to Dify's inner API --------------------------------------------------------------


class FakeDify:
    """Dify's inner API on 127.0.0.1: records each request, answers from `answers`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.answers: dict[str, tuple[int, bytes]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                fake.requests.append((self.path, dict(self.headers), body))
                status, answer = fake.answers.get(self.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stream(self, path: str, *documents: dict[str, Any]) -> None:
        chunks = b"".join(length_prefixed(json.dumps(d).encode()) for d in documents)
        self.answers[path] = (200, chunks)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dify() -> Iterator[FakeDify]:
    fake = FakeDify()
    yield fake
    fake.close()


def permitting(directory: Path, permission: dict[str, Any]) -> Caller:
    """A caller whose plugin's manifest (in `directory`) declares `permission`."""
    manifest = {"resource": {"memory": 1, "permission": permission}}
    (directory / "manifest.yaml").write_text(json.dumps(manifest))
    return caller(directory=directory)


def forwarding(dify: FakeDify) -> Backwards:
    return Backwards(BackwardsSettings(inner_api_url=dify.url + "/base", inner_api_key=INNER_KEY))


def llm_chunk(text: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "name": None, "tool_calls": []}
    delta = {"index": 0, "message": message, "usage": None, "finish_reason": None}
    return {"model": "gpt-4o", "prompt_messages": [], "system_fingerprint": None, "delta": delta}


def test_a_call_is_forwarded_to_difys_inner_api_as_the_daemon_sends_it(
    tmp_path: Path, dify: FakeDify
) -> None:
    settings = BackwardsSettings(inner_api_url=dify.url, inner_api_key=INNER_KEY)
    emulator = Emulator(calling_plugin(tmp_path, STORAGE_AND_LLM), settings)
    dify.stream(
        "/inner/api/invoke/llm",
        {"data": llm_chunk("Hel"), "error": ""},
        {"data": llm_chunk("lo"), "error": ""},
    )

    items = emulator.storage_get("llm:say hello")

    assert texts_of(items) == ["Hel", "lo"]
    (path, headers, body) = dify.requests[0]
    assert path == "/inner/api/invoke/llm"
    assert headers["X-Inner-Api-Key"] == INNER_KEY
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "Go-http-client/1.1"
    assert "Accept" not in headers
    assert (body["tenant_id"], body["user_id"], body["type"]) == (TENANT, "user-7b21", "llm")
    assert (body["provider"], body["model"], body["mode"]) == ("openai", "gpt-4o", "chat")
    assert body["prompt_messages"][0]["content"] == "say hello"
    # The daemon's InvokeLLMRequest: its fields in order, the SDK's model_type dropped.
    assert list(body) == [
        "tenant_id", "user_id", "type", "provider", "model", "mode", "completion_params",
        "prompt_messages", "tools", "stop", "stream",
    ]  # fmt: skip
    assert body["prompt_messages"][0] == {
        "role": "user",
        "content": "say hello",
        "name": "",
        "tool_calls": None,
        "tool_call_id": "",
    }
    assert re.fullmatch("00-[0-9a-f]{32}-[0-9a-f]{16}-01", headers["traceparent"])
    (dispatch,) = emulator.journal.dispatches()
    assert (dispatch.backwards[0].answered_by, dispatch.backwards[0].responses) == ("forward", 2)


def test_calls_carry_the_trace_of_the_dispatch_that_made_them(
    tmp_path: Path, dify: FakeDify
) -> None:
    settings = BackwardsSettings(inner_api_url=dify.url, inner_api_key=INNER_KEY)
    emulator = Emulator(calling_plugin(tmp_path, STORAGE_AND_LLM), settings)
    dify.stream("/inner/api/invoke/llm", {"data": llm_chunk("a"), "error": ""})
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"

    with TestClient(emulator.app, base_url="http://daemon") as client:
        headers = {**dispatch_headers(TOOL_ECHO), "traceparent": trace}
        client.post(dispatch_url("tool/invoke"), json=storage_get_body("llm:a"), headers=headers)

    # The daemon keeps the caller's trace and span ids, and always marks the trace sampled.
    assert dify.requests[0][1]["traceparent"] == (
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    )


@pytest.mark.parametrize(
    "header", [None, "", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "00-xyz-1-01"]
)
def test_a_dispatch_without_a_usable_traceparent_gets_a_new_trace(header: str | None) -> None:
    made = session_traceparent(header)

    assert re.fullmatch("00-[0-9a-f]{32}-[0-9a-f]{16}-01", made)
    assert made != session_traceparent(header)


def test_a_struct_answer_is_relayed_once(dify: FakeDify, tmp_path: Path) -> None:
    usage = {"tokens": 1, "total_tokens": 1, "unit_price": "0.1", "price_unit": "0.001"}
    usage.update(total_price="0.0001", currency="USD", latency=0.5)
    embedding = {"model": "e", "embeddings": [[0.5]], "usage": usage}
    dify.answers["/base/inner/api/invoke/text-embedding"] = (
        200,
        json.dumps({"data": embedding, "error": ""}).encode(),
    )
    origin = permitting(tmp_path, {"model": {"enabled": True, "text_embedding": True}})

    events = call(forwarding(dify), "text_embedding", EMBEDDING_REQUEST, origin)

    assert events == [("response", "struct", embedding), ("end", "", None)]
    assert dify.requests[0][0] == "/base/inner/api/invoke/text-embedding"


def test_fetch_app_answers_with_the_inner_data(dify: FakeDify, tmp_path: Path) -> None:
    app = {"id": "app-1", "mode": "chat"}
    dify.answers["/base/inner/api/fetch/app/info"] = (
        200,
        json.dumps({"data": {"data": app}, "error": ""}).encode(),
    )
    origin = permitting(tmp_path, {"app": {"enabled": True}})

    events = call(forwarding(dify), "fetch_app", {"app_id": "app-1"}, origin)

    assert events[0] == ("response", "struct", app)


@pytest.mark.parametrize(
    ("path", "status", "answer", "message"),
    [
        ("/base/inner/api/invoke/text-embedding", 200, b'{"error": "quota exceeded"}',
         "invoke text-embedding model failed: request failed: quota exceeded"),
        ("/base/inner/api/invoke/text-embedding", 200, b'{"error": ""}',
         "invoke text-embedding model failed: data is nil"),
    ],
)  # fmt: skip
def test_difys_errors_reach_the_plugin_in_the_daemons_words(
    dify: FakeDify, tmp_path: Path, path: str, status: int, answer: bytes, message: str
) -> None:
    dify.answers[path] = (status, answer)
    origin = permitting(tmp_path, {"model": {"enabled": True, "text_embedding": True}})

    events = call(forwarding(dify), "text_embedding", EMBEDDING_REQUEST, origin)

    assert events == [("error", message, None), ("end", "", None)]


def test_a_streamed_call_refused_by_dify_shows_its_status_and_body(
    dify: FakeDify, tmp_path: Path
) -> None:
    dify.answers["/base/inner/api/invoke/tool"] = (500, b"boom")
    origin = permitting(tmp_path, {"tool": {"enabled": True}})

    events = call(forwarding(dify), "tool", TOOL_REQUEST, origin)

    assert events[0] == (
        "error",
        "invoke tool failed: request failed with status code: 500 and respond with: boom",
        None,
    )


def test_an_error_chunk_in_a_stream_ends_the_call(dify: FakeDify, tmp_path: Path) -> None:
    dify.stream(
        "/base/inner/api/invoke/tool",
        {"data": {"type": "text", "message": {"text": "a"}}, "error": ""},
        {"error": "tool crashed"},
    )
    origin = permitting(tmp_path, {"tool": {"enabled": True}})

    events = call(forwarding(dify), "tool", TOOL_REQUEST, origin)

    assert [event for event, _, _ in events] == ["response", "error", "end"]
    assert events[1][1] == "read tool response failed: request failed: tool crashed"


def test_a_streamed_chunk_go_cannot_decode_is_skipped_and_an_invalid_one_ends_the_call(
    dify: FakeDify, tmp_path: Path
) -> None:
    text = {"type": "text", "message": {"text": "kept"}, "meta": None}
    dify.stream(
        "/base/inner/api/invoke/tool",
        {"data": {"type": 5}, "error": ""},
        {"data": text, "error": ""},
        {"data": {"type": "bogus"}, "error": ""},
    )
    origin = permitting(tmp_path, {"tool": {"enabled": True}})

    events = call(forwarding(dify), "tool", TOOL_REQUEST, origin)

    assert events == [
        ("response", "stream", text),
        (
            "error",
            "read tool response failed: validate request failed: Key: 'ToolResponseChunk.Type'"
            " Error:Field validation for 'Type' failed on the"
            " 'is_valid_tool_response_chunk_type' tag",
            None,
        ),
        ("end", "", None),
    ]


def test_an_unreachable_dify_fails_the_call_quickly(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings = BackwardsSettings(inner_api_url=url, inner_api_key="k")
    origin = permitting(tmp_path, {"app": {"enabled": True}})

    events = call(Backwards(settings), "app", {"app_id": "a"}, origin)

    event, message, _ = events[0]
    assert event == "error"
    assert message.startswith(f'invoke app failed: Post "{url}/inner/api/invoke/app": dial tcp')


def test_length_prefixed_chunks_read_the_daemons_framing() -> None:
    framed = length_prefixed(b'{"a":1}') + length_prefixed(b"")

    assert list(length_prefixed_chunks([framed[:3], framed[3:9], framed[9:]])) == [
        (b'{"a":1}', None),
        (b"", None),
    ]
    assert list(length_prefixed_chunks([b"\x01\x00\x0a\x00"])) == [
        (b"", "magic number mismatch: 1")
    ]
    assert list(length_prefixed_chunks([b"\x0f\x00\x0b\x00"])) == [
        (b"", "header length mismatch: 11")
    ]


def test_the_inner_api_url_keeps_the_base_path() -> None:
    assert inner_api_url("http://dify:5001/", "invoke/llm") == (
        "http://dify:5001/inner/api/invoke/llm"
    )
    assert inner_api_url("http://dify/console", "/invoke/llm/structured-output") == (
        "http://dify/console/inner/api/invoke/llm/structured-output"
    )
    assert inner_api_url("http://dify/base/../dify/?tenant=x", "invoke/tool") == (
        "http://dify/dify/inner/api/invoke/tool?tenant=x"
    )
    assert inner_api_url("http://dify", "invoke/tool") == "http://dify/inner/api/invoke/tool"


def test_calls_to_dify_do_not_follow_proxy_variables(
    tmp_path: Path, dify: FakeDify, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon's transport sets no Proxy: the key must not go to a proxy.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    settings = BackwardsSettings(inner_api_url=dify.url, inner_api_key=INNER_KEY)
    emulator = Emulator(calling_plugin(tmp_path, STORAGE_AND_LLM), settings)
    dify.stream("/inner/api/invoke/llm", {"data": llm_chunk("direct"), "error": ""})

    assert texts_of(emulator.storage_get("llm:say hello")) == ["direct"]


def test_settings_read_the_daemons_env_names() -> None:
    settings = BackwardsSettings.from_env(
        {
            "DIFY_INNER_API_URL": "http://127.0.0.1:5001",
            "DIFY_INNER_API_KEY": "secret",
            "DIFY_BACKWARDS_INVOCATION_READ_TIMEOUT": "1500",
        }
    )

    assert settings == BackwardsSettings("http://127.0.0.1:5001", "secret", 5.0, 1.5)
    with pytest.raises(ValueError, match="DIFY_BACKWARDS_INVOCATION_WRITE_TIMEOUT"):
        BackwardsSettings.from_env({"DIFY_BACKWARDS_INVOCATION_WRITE_TIMEOUT": "soon"})


def test_a_plugin_in_its_own_process_gets_its_answer_too() -> None:
    plugin = load_plugin(FIXTURE_PLUGINS / "tool_echo", RuntimeChoice(runtime="subprocess"))
    try:
        emulator = Emulator(PluginSet([plugin]))
        emulator.backwards.handle("storage", lambda call: b"over stdin")

        assert texts_of(emulator.storage_get("greeting")) == ["over stdin"]
    finally:
        plugin.close()
