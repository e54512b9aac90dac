"""Go's encoding/json meanings, case by case (the Go oracle test compares them wholesale)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest

from emulator.contract.findings import WarningKind
from emulator.contract.gojson import encode_float, encode_string, encode_struct, parse_document
from emulator.contract.gotypes import Go, GoStruct
from emulator.contract.model import RequestInvokeLLM, RequestInvokeRerank
from emulator.contract.wrapper import BoundRequest, bind
from helpers import TENANT

LLM_DATA = {"provider": "p", "model": "m", "model_type": "llm"}


def bound(
    body: bytes | str | dict[str, Any], model: Any = RequestInvokeLLM, **kw: Any
) -> BoundRequest:
    raw = (
        body
        if isinstance(body, bytes)
        else (body if isinstance(body, str) else json.dumps(body)).encode()
    )
    return bind(model, raw, TENANT, kw.get("content_type", "application/json"))


def kinds(request: BoundRequest) -> list[str]:
    return [warning.kind for warning in request.warnings]


def test_repeated_objects_merge_into_the_earlier_value() -> None:
    request = bound('{"data":{"provider":"p","model":"m"},"data":{"model_type":"llm"}}')

    assert request.validation_errors == []
    assert WarningKind.DUPLICATE_KEY in kinds(request)


def test_a_later_null_or_mismatch_keeps_the_earlier_value() -> None:
    request = bound('{"app_id":"a","app_id":5,"data":{"provider":"openai","provider":null}}')

    assert request.values["app_id"] == "a"
    assert request.data["provider"] == "openai"


def test_a_bad_prompt_message_aborts_the_rest_of_the_document() -> None:
    body = (
        '{"data":{"provider":"p","model":"m","model_type":"llm",'
        '"prompt_messages":[{"role":"user"}]},"app_id":"lost"}'
    )

    request = bound(body)

    assert request.validation_errors == []  # model_type came first, so the data is complete
    assert request.values["app_id"] is None
    assert "decode_aborted $.data.prompt_messages[0]" in str([str(w) for w in request.warnings])
    assert "(content field is required)" in str([str(w) for w in request.warnings])


def test_go_folds_keys_rune_by_rune_as_go_1_21_and_later_do() -> None:
    dotless_i, long_s = "\u0131", "\u017f"  # upper(lower(rune)) makes them I and S
    for key in ("APP_ID", "App_Id", f"app_{dotless_i}d"):
        assert bound({key: "x", "data": LLM_DATA}).values["app_id"] == "x", key
    assert bound({f"u{long_s}er_id": "u", "data": LLM_DATA}).values["user_id"] == "u"
    assert bound({"app_id_": "x", "data": LLM_DATA}).values["app_id"] is None


def test_invalid_utf8_becomes_one_replacement_per_byte() -> None:
    request = bound(b'{"app_id":"a\xe2\x82b","data":{}}')

    assert request.values["app_id"] == "a\ufffd\ufffdb"
    assert WarningKind.INVALID_UTF8 in kinds(request)


def test_null_into_a_string_is_silent_but_into_a_number_it_is_reported() -> None:
    body = {
        "data": {
            "provider": "p",
            "model": "m",
            "model_type": "rerank",
            "query": "q",
            "docs": ["a"],
            "top_n": None,
            "credential_type": None,
        }
    }

    request = bound(body, RequestInvokeRerank)

    assert [str(w) for w in request.warnings] == [
        "null_to_zero $.data.top_n: expected int, got null; Go leaves it at its zero value 0"
    ]


@pytest.mark.parametrize(
    ("content_type", "read"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/json foo", True),  # gin cuts at the first space
        ("Application/JSON", False),
        (" application/json", False),
        ("text/plain", False),
        (None, False),
    ],
)
def test_the_body_is_read_only_for_gins_json_content_types(
    content_type: str | None, read: bool
) -> None:
    request = bind(RequestInvokeLLM, json.dumps({"data": LLM_DATA}).encode(), TENANT, content_type)

    assert (request.validation_errors == []) is read
    assert (WarningKind.BODY_IGNORED in kinds(request)) is not read


def test_a_null_body_decodes_nothing_and_says_so() -> None:
    request = bound("null")

    assert len(request.validation_errors) == 3
    assert [str(w) for w in request.warnings] == [
        "null_to_zero $: expected an object, got null; nothing is decoded"
    ]


def test_tool_choice_names_are_trimmed_as_go_trims_them() -> None:
    def tool_choice_errors(name: str) -> list[str]:
        data = {**LLM_DATA, "tool_choice": {"mode": "tool", "name": name}}
        return bound({"data": data}).validation_errors

    assert tool_choice_errors(" \t\u3000") != []
    assert tool_choice_errors("\x1c") == []  # Python's strip() would remove it; Go's does not


@pytest.mark.parametrize(
    ("number", "go"),
    [
        (0.0, "0"),
        (1.0, "1"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (123.456, "123.456"),
        (-0.0, "-0"),
    ],
)
def test_floats_are_printed_as_go_prints_them(number: float, go: str) -> None:
    assert encode_float(number) == go


def test_strings_are_escaped_as_go_escapes_them() -> None:
    assert (
        encode_string('<a href="x">&\u2028\n') == '"\\u003ca href=\\"x\\"\\u003e\\u0026\\u2028\\n"'
    )


def test_trailing_bytes_after_the_value_are_ignored_and_reported() -> None:
    warnings: list[Any] = []

    assert parse_document(b'{"a":1} trailing', warnings) is not None
    assert [w.kind for w in warnings] == [WarningKind.TRAILING_DATA]


class _Omitted(GoStruct):
    count: Annotated[int | None, Go(omitempty=True)] = None
    anything: Annotated[Any, Go(omitempty=True)] = None
    name: Annotated[str, Go(omitempty=True)] = ""
    total: Annotated[int, Go(omitempty=True)] = 0
    tags: Annotated[list[str] | None, Go(omitempty=True)] = None
    labels: Annotated[dict[str, Any] | None, Go(omitempty=True)] = None


def test_omitempty_leaves_out_by_kind_as_go_does() -> None:
    zeros = {"count": 0, "anything": 0, "name": "", "total": 0, "tags": [], "labels": {}}
    nils = {**zeros, "count": None, "anything": None, "tags": None, "labels": None}

    # A pointer to 0 and an interface holding 0 are not nil, so Go writes them.
    assert encode_struct(_Omitted, zeros) == '{"count":0,"anything":0}'
    assert encode_struct(_Omitted, nils) == "{}"
