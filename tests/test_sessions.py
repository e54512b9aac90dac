"""The daemon's side of a plugin session: the line it writes, and what it makes of replies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator.contract.gojson import RawMessage, parse_value
from emulator.contract.model import RequestInvokeLLM
from emulator.contract.routes import ROUTES_BY_PATH
from emulator.contract.wrapper import bind
from emulator.sessions import END, Item, read_plugin_event, read_session_message, request_line

LLM = ROUTES_BY_PATH["llm/invoke"]


def bound_llm(body: dict[str, Any]) -> dict[str, Any]:
    return bind(RequestInvokeLLM, json.dumps(body).encode(), "t", "application/json").values


def session(kind: str, data: Any) -> RawMessage:
    """A session message as the daemon holds it after reading the plugin's line."""
    return RawMessage(parse_value(json.dumps({"type": kind, "data": data})))


def inner_error(item: Item | Any) -> dict[str, Any]:
    envelope = json.loads(item.envelope)
    assert envelope["code"] == -500 and envelope["data"] is None
    outer = json.loads(envelope["message"])
    assert outer["error_type"] == "PluginInvokeError"
    return json.loads(outer["message"])  # type: ignore[no-any-return]


def test_the_plugin_line_is_the_daemons_sorted_flattened_map() -> None:
    request = bound_llm(
        {
            "user_id": "u",
            "app_id": "a",
            "data": {
                "provider": "openai",
                "model": "gpt",
                "model_type": "llm",
                "credentials": {"b": 1, "a": 2.5},
                "prompt_messages": [{"role": "user", "content": [{"type": "text", "data": "hi"}]}],
                "model_parameters": {"temperature": 0.1},
                "stop": ["a"],
                "stream": True,
                "tool_choice": {"mode": "auto"},
            },
        }
    )

    line = request_line(LLM, request, "s-1")

    assert line.startswith(
        '{"session_id":"s-1","conversation_id":null,"message_id":null,"app_id":"a",'
        '"endpoint_id":null,"context":null,"event":"request","data":{"action":"invoke_llm",'
        '"credentials":{"a":2.5,"b":1},"json_schema":null,"model":"gpt","model_parameters":'
        '{"temperature":0.1},"model_type":"llm","prompt_messages":[{"role":"user","content":'
        '[{"type":"text","base64_data":"","url":"","data":"hi","encode_format":"","format":"",'
        '"mime_type":"","detail":"","filename":""}],"name":"","tool_calls":null,"tool_call_id":""}],'
        '"provider":"openai","stop":["a"],"stream":true,"tool_choice":{"mode":"auto"},"tools":null,'
        '"type":"model","user_id":"u"}}'
    )
    assert "credential_type" not in line  # omitempty keys are dropped when empty


def test_numbers_reach_the_plugin_as_float64_as_go_prints_them() -> None:
    request = bound_llm(
        {
            "data": {
                "provider": "p",
                "model": "m",
                "model_type": "llm",
                "credentials": {"big": 9007199254740993, "tiny": 1e-7, "huge": 1e21},
            }
        }
    )

    data = json.loads(request_line(LLM, request, "s"))["data"]

    assert data["credentials"] == {"big": 9007199254740992, "tiny": 1e-7, "huge": 1e21}


def test_a_chunk_that_fails_the_response_type_ends_with_unmarshal_error() -> None:
    chunk = {"model": "m", "delta": {"message": {"role": "assistant", "content": "x"}}}

    item = read_session_message(LLM, session("stream", chunk))

    assert isinstance(item, Item) and item.is_error
    assert inner_error(item) == {
        "error_type": "unmarshal_error",
        "message": "unmarshal json failed: Key: 'LLMResultChunk.Delta.Index' "
        "Error:Field validation for 'Index' failed on the 'required' tag",
    }


def test_a_chunk_of_the_wrong_type_ends_with_goes_decode_error() -> None:
    item = read_session_message(
        ROUTES_BY_PATH["moderation/invoke"], session("stream", {"result": "yes"})
    )

    assert inner_error(item)["message"] == (
        "unmarshal json failed: json: cannot unmarshal string into Go struct field "
        "ModerationResult.result of type bool"
    )


def test_a_valid_chunk_is_re_encoded_as_go_encodes_it() -> None:
    chunk = {
        "model": "m",
        "delta": {
            "index": 0,
            "message": {"role": "assistant", "content": "<b>"},
            "usage": {
                "prompt_tokens": 1,
                "completion_tokens": 2,
                "total_tokens": 3,
                "prompt_unit_price": "0.0010",
                "completion_unit_price": 1e-7,
                "currency": "USD",
                "latency": 0.5,
            },
        },
    }

    item = read_session_message(LLM, session("stream", chunk))

    assert isinstance(item, Item) and not item.is_error
    assert '"content":"\\u003cb\\u003e"' in item.envelope
    assert '"prompt_unit_price":"0.001"' in item.envelope
    assert '"completion_unit_price":"0.0000001"' in item.envelope
    assert '"prompt_price":"0"' in item.envelope
    assert item.envelope.endswith(',"prompt_messages":[]}}')


def test_end_closes_and_a_plugin_error_is_triple_encoded() -> None:
    assert read_session_message(LLM, session("end", {})) is END

    item = read_session_message(
        LLM,
        session(
            "error",
            {
                "message": "slow down",
                "error_type": "InvokeRateLimitError",
                "args": {"z": 1, "a": 2},
            },
        ),
    )

    assert inner_error(item) == {
        "args": {"a": 2, "z": 1},
        "error_type": "InvokeRateLimitError",
        "message": "slow down",
    }


@pytest.mark.parametrize("bad", [{"message": 5}, {"args": {str(n): n for n in range(11)}}])
def test_a_malformed_error_frame_is_ignored_as_the_daemon_ignores_it(bad: dict[str, Any]) -> None:
    frame = {"message": "m", "error_type": "E", **bad}

    assert read_session_message(LLM, session("error", frame)) is None


def test_unknown_message_types_end_the_stream() -> None:
    item = read_session_message(LLM, session("telepathy", {}))

    assert inner_error(item) == {
        "error_type": "unknown_stream_message_type",
        "message": "unknown stream message type: telepathy",
    }


def test_the_outer_layer_matches_keys_case_insensitively_like_go() -> None:
    event = read_plugin_event(
        '{"Session_ID":"s","EVENT":"session","data":{"type":"end","data":{}}}'
    )

    assert event is not None and (event.session_id, event.event) == ("s", "session")
    assert read_plugin_event("not json") is None
