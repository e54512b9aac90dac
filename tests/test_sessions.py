"""The daemon's side of a plugin session: the line it writes, and what it makes of replies."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.contract.blob_chunks import go_base64_decode
from emulator.contract.gojson import RawMessage, parse_value
from emulator.contract.model import RequestInvokeLLM
from emulator.contract.routes import ROUTES_BY_PATH
from emulator.contract.wrapper import bind
from emulator.sessions import (
    END,
    Item,
    SessionReader,
    read_plugin_event,
    read_session_message,
    request_line,
)

LLM = ROUTES_BY_PATH["llm/invoke"]
AGENT = ROUTES_BY_PATH["agent_strategy/invoke"]
TOOL = ROUTES_BY_PATH["tool/invoke"]


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
    return json.loads(outer["message"])


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


# Blob chunks ------------------------------------------------------------------------------


def blob_chunk(
    blob: bytes | str, end: bool = False, blob_id: str = "f1", meta: Any = None, **extra: Any
) -> RawMessage:
    """A `blob_chunk` stream message as the SDK sends it (the blob base64, a sequence)."""
    text = blob if isinstance(blob, str) else base64.b64encode(blob).decode()
    message = {"id": blob_id, "sequence": 0, "total_length": 30, "blob": text, "end": end}
    return session("stream", {"type": "blob_chunk", "message": {**message, **extra}, "meta": meta})


def success_data(item: Item | Any) -> Any:
    assert isinstance(item, Item) and not item.is_error
    envelope = json.loads(item.envelope)
    assert (envelope["code"], envelope["message"]) == (0, "success")
    return envelope["data"]


def plain_error(item: Item | Any) -> str:
    """A stream error whose inner message is plain text, not JSON."""
    assert isinstance(item, Item) and item.is_error
    envelope = json.loads(item.envelope)
    assert (envelope["code"], envelope["data"]) == (-500, None)
    outer = json.loads(envelope["message"])
    assert (outer["error_type"], outer["args"]) == ("PluginInvokeError", None)
    return outer["message"]


def test_agent_blob_chunks_become_one_blob_with_the_end_chunks_meta() -> None:
    reader = SessionReader(AGENT)

    buffered = [reader.read(blob_chunk(part)) for part in (b"hello ", b"agent ", b"blob")]
    item = reader.read(blob_chunk(b"ignored", end=True, meta={"mime_type": "text/plain"}))

    assert buffered == [None, None, None]
    assert isinstance(item, Item)
    assert item.envelope == (
        '{"code":0,"message":"success","data":{"type":"blob","message":'
        f'{{"blob":"{base64.b64encode(b"hello agent blob").decode()}"}},'
        '"meta":{"mime_type":"text/plain"}}}'
    )


def test_blobs_are_kept_apart_by_id_and_other_items_pass_between_them() -> None:
    reader = SessionReader(AGENT)
    text = session("stream", {"type": "text", "message": {"text": "hi"}, "meta": None})

    reader.read(blob_chunk(b"one", blob_id="a"))
    reader.read(blob_chunk(b"two", blob_id="b"))
    passed = reader.read(text)
    first = reader.read(blob_chunk("", end=True, blob_id="a"))

    assert success_data(passed) == {"type": "text", "message": {"text": "hi"}, "meta": None}
    assert success_data(first)["message"] == {"blob": base64.b64encode(b"one").decode()}


def test_an_ended_blob_stays_buffered_and_a_second_end_sends_it_all_again() -> None:
    reader = SessionReader(AGENT)

    reader.read(blob_chunk(b"abc"))
    reader.read(blob_chunk("", end=True))
    reader.read(blob_chunk(b"def"))
    again = reader.read(blob_chunk("", end=True))

    assert success_data(again)["message"]["blob"] == base64.b64encode(b"abcdef").decode()


def test_an_end_with_nothing_before_it_is_an_empty_blob() -> None:
    item = SessionReader(AGENT).read(blob_chunk("", end=True, meta={"k": 1}))

    assert success_data(item) == {"type": "blob", "message": {"blob": ""}, "meta": {"k": 1}}


@pytest.mark.parametrize(
    "broken",
    [
        {"id": None},
        {"id": 7},
        {"total_length": None},
        {"total_length": "30"},
        {"blob": None},
        {"blob": ["aGk="]},
        {"end": None},
        {"end": "true"},
    ],
    ids=repr,
)
def test_a_chunk_missing_a_member_is_dropped_without_a_word(broken: dict[str, Any]) -> None:
    reader = SessionReader(AGENT)
    present = {name: value for name, value in broken.items() if value is not None}
    message = {"id": "f1", "total_length": 3, "blob": "aGk=", "end": False, **present}
    for name in [name for name, value in broken.items() if value is None]:
        del message[name]

    dropped = reader.read(session("stream", {"type": "blob_chunk", "message": message}))
    end = reader.read(blob_chunk("", end=True))

    assert dropped is None
    assert success_data(end)["message"] == {"blob": ""}


def test_a_blob_chunk_without_a_message_is_dropped() -> None:
    assert SessionReader(AGENT).read(session("stream", {"type": "blob_chunk"})) is None


def test_a_decoded_chunk_over_8192_bytes_ends_the_stream() -> None:
    reader = SessionReader(AGENT)

    assert reader.read(blob_chunk(b"x" * 8192)) is None
    item = reader.read(blob_chunk(b"x" * 8193))

    assert plain_error(item) == "single file chunk is too large"


def test_a_file_over_15_mib_ends_the_stream_at_the_next_chunk() -> None:
    reader = SessionReader(AGENT)
    full = blob_chunk(b"x" * 8192)
    chunks_in_15_mib = 15 * 1024 * 1024 // 8192

    taken = [reader.read(full) for _ in range(chunks_in_15_mib + 1)]
    item = reader.read(blob_chunk(b"y"))

    assert taken == [None] * (chunks_in_15_mib + 1)
    assert plain_error(item) == "file is too large"


def test_a_file_of_exactly_15_mib_is_still_taken() -> None:
    reader = SessionReader(AGENT)
    full = blob_chunk(b"x" * 8192)
    for _ in range(15 * 1024 * 1024 // 8192):
        reader.read(full)

    assert reader.read(blob_chunk(b"y")) is None


def test_a_chunk_that_is_not_base64_ends_the_stream_with_gos_error() -> None:
    item = SessionReader(AGENT).read(blob_chunk("aGk*"))

    assert plain_error(item) == "illegal base64 data at input byte 3"


@pytest.mark.parametrize("total_length", [-1, 1e300])
def test_a_total_length_go_cannot_allocate_ends_the_stream_quietly(total_length: float) -> None:
    reader = SessionReader(AGENT)

    assert reader.read(blob_chunk(b"hi", total_length=total_length)) is END


def test_a_chunk_of_an_unknown_type_fails_the_chunk_type_tag() -> None:
    item = SessionReader(AGENT).read(session("stream", {"type": "video", "message": {}}))

    assert inner_error(item) == {
        "error_type": "unmarshal_error",
        "message": "unmarshal json failed: Key: 'AgentStrategyResponseChunk.ToolResponseChunk."
        "Type' Error:Field validation for 'Type' failed on the "
        "'is_valid_tool_response_chunk_type' tag",
    }


def test_tool_blob_chunks_pass_through_unchanged() -> None:
    reader = SessionReader(TOOL)

    item = reader.read(blob_chunk(b"x" * 9000, meta={"a": 1}))
    end = reader.read(blob_chunk("", end=True))

    data = success_data(item)
    assert data["type"] == "blob_chunk" and data["meta"] == {"a": 1}
    assert base64.b64decode(data["message"]["blob"]) == b"x" * 9000
    assert success_data(end)["message"]["end"] is True


@pytest.mark.parametrize(
    ("text", "decoded", "error_at"),
    [
        ("aGVsbG8=", b"hello", None),
        ("aGVs\r\nbG8=", b"hello", None),
        ("aGk=\n", b"hi", None),
        ("", b"", None),
        ("aGVsbG8", b"hel", 4),
        ("aG", b"", 0),
        ("aG=", b"", 3),
        ("a===", b"", 1),
        ("aGk=aGk=", b"hi", 4),
        ("aG=x", b"", 2),
        ("aGVs!G8=", b"hel", 4),
        ("aGVsbG8=\u00e9", b"hel", 8),
    ],
)
def test_base64_decodes_as_gos_std_encoding(
    text: str, decoded: bytes, error_at: int | None
) -> None:
    text = text.encode().decode("unicode_escape")

    result, error = go_base64_decode(text)

    assert error == (None if error_at is None else f"illegal base64 data at input byte {error_at}")
    if error is None:
        assert result == decoded


@given(st.binary(max_size=64), st.lists(st.integers(0, 90), max_size=3))
def test_base64_with_or_without_newlines_decodes_to_the_bytes(
    blob: bytes, breaks: list[int]
) -> None:
    text = base64.b64encode(blob).decode()
    for at in sorted(breaks, reverse=True):
        text = text[:at] + "\r\n" + text[at:]

    assert go_base64_decode(text) == (blob, None)
