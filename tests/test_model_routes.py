"""Each of the 16 model routes: Dify's payload answered in the daemon's shape, or its 400."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dify_client import collect, envelopes
from emulator.contract.routes import MODEL_ROUTES
from helpers import assert_missing_member_400, dispatch_headers, dispatch_url, payload

SESSION_KEYS = {"app_id", "conversation_id", "message_id", "endpoint_id", "session_id", "user_id"}


def session_in(text: str) -> dict[str, Any]:
    session = json.loads(text)
    assert set(session) == SESSION_KEYS
    return session  # type: ignore[no-any-return]


def check_llm(chunks: list[Any]) -> None:
    assert len(chunks) == 5  # the session, "Hello echo plugin" word by word, the usage
    assert session_in(chunks[0]["delta"]["message"]["content"])["app_id"] == "app-9f3c"
    assert all(chunk["prompt_messages"] == [] for chunk in chunks)
    assert list(chunks[1]["delta"]["message"]) == [
        "role",
        "content",
        "name",
        "tool_calls",
        "tool_call_id",
        "opaque_body",
    ]
    usage = chunks[-1]["delta"]["usage"]
    assert chunks[-1]["delta"]["finish_reason"] == "stop"
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert isinstance(usage["prompt_unit_price"], str)  # decimals go out as strings


def check_embedding(chunks: list[Any]) -> None:
    (result,) = chunks
    model, _, session = result["model"].partition(" ")
    assert model == "echo-embed" and session_in(session)["app_id"] == "app-9f3c"
    assert [len(vector) for vector in result["embeddings"]] == [4] * len(result["embeddings"])
    assert list(result["usage"]) == [
        "tokens",
        "total_tokens",
        "unit_price",
        "price_unit",
        "total_price",
        "currency",
        "latency",
    ]


def check_rerank(chunks: list[Any]) -> None:
    (result,) = chunks
    model, _, session = result["model"].partition(" ")
    assert model == "echo-rerank" and session_in(session)["app_id"] == "app-9f3c"
    assert result["docs"] and all(set(doc) == {"index", "text", "score"} for doc in result["docs"])


def check_tts(chunks: list[Any]) -> None:
    audio = b"".join(bytes.fromhex(chunk["result"]) for chunk in chunks).decode()
    assert session_in(audio.splitlines()[0])["app_id"] == "app-9f3c"


def check_speech2text(chunks: list[Any]) -> None:
    (result,) = chunks
    assert session_in(result["result"].splitlines()[0])["app_id"] == "app-9f3c"
    assert "heard 60 bytes" in result["result"]


def check_credentials(chunks: list[Any]) -> None:
    assert [chunk["result"] for chunk in chunks] == [True]
    assert set(chunks[0]) == {"result", "credentials"}


def check_schema(chunks: list[Any]) -> None:
    (result,) = chunks
    schema = result["model_schema"]
    assert schema["model"] and schema["fetch_from"] == "predefined-model"
    assert isinstance(schema["parameter_rules"], list)


EXPECTED: dict[str, Callable[[list[Any]], None]] = {
    "llm/invoke": check_llm,
    "llm/num_tokens": lambda chunks: assert_equal(chunks, [{"num_tokens": 8}]),
    "text_embedding/invoke": check_embedding,
    "text_embedding/num_tokens": lambda chunks: assert_equal(list(chunks[0]), ["num_tokens"]),
    "multimodal_embedding/invoke": check_embedding,
    "rerank/invoke": check_rerank,
    "multimodal_rerank/invoke": check_rerank,
    "tts/invoke": check_tts,
    "tts/model/voices": lambda chunks: assert_equal(
        chunks, [{"voices": [{"name": "Alice", "value": "alice"}, {"name": "Bob", "value": "bob"}]}]
    ),
    "speech2text/invoke": check_speech2text,
    "moderation/invoke": lambda chunks: assert_equal(chunks, [{"result": False}]),
    "model/validate_provider_credentials": check_credentials,
    "model/validate_model_credentials": check_credentials,
    "model/schema": check_schema,
    "model/polling/start": lambda chunks: assert_equal(chunks[0]["status"], "running"),
    "model/polling/check": lambda chunks: assert_equal(chunks[0]["status"], "succeeded"),
}

# The field each route loses, and the validator's key for it (from the daemon's Go structs).
MISSING: dict[str, tuple[str, str]] = {
    "llm/invoke": ("model_type", "RequestInvokeLLM].Data.ModelType"),
    "llm/num_tokens": ("model", "RequestGetLLMNumTokens].Data.BaseRequestInvokeModel.Model"),
    "text_embedding/invoke": (
        "texts",
        "RequestInvokeTextEmbedding].Data.InvokeTextEmbeddingSchema.Texts",
    ),
    "text_embedding/num_tokens": ("texts", "RequestGetTextEmbeddingNumTokens].Data.Texts"),
    "multimodal_embedding/invoke": (
        "input_type",
        "RequestInvokeMultimodalEmbedding].Data.InvokeMultimodalEmbeddingSchema.InputType",
    ),
    "rerank/invoke": ("query", "RequestInvokeRerank].Data.InvokeRerankSchema.Query"),
    "multimodal_rerank/invoke": (
        "docs",
        "RequestInvokeMultimodalRerank].Data.InvokeMultimodalRerankSchema.Docs",
    ),
    "tts/invoke": ("tenant_id", "RequestInvokeTTS].Data.InvokeTTSSchema.TenantID"),
    "tts/model/voices": ("model_type", "RequestGetTTSModelVoices].Data.ModelType"),
    "speech2text/invoke": ("file", "RequestInvokeSpeech2Text].Data.InvokeSpeech2TextSchema.File"),
    "moderation/invoke": ("text", "RequestInvokeModeration].Data.InvokeModerationSchema.Text"),
    "model/validate_provider_credentials": (
        "provider",
        "RequestValidateProviderCredentials].Data.Provider",
    ),
    "model/validate_model_credentials": (
        "provider",
        "RequestValidateModelCredentials].Data.BaseRequestInvokeModel.Provider",
    ),
    "model/schema": ("model_type", "RequestGetAIModelSchema].Data.ModelType"),
    "model/polling/start": (
        "model",
        "RequestStartPolling].Data.RequestInvokeLLM.BaseRequestInvokeModel.Model",
    ),
    "model/polling/check": ("plugin_state", "RequestCheckPolling].Data.PluginState"),
}

ROUTE_PATHS = [route.path for route in MODEL_ROUTES]


def assert_equal(actual: Any, expected: Any) -> None:
    assert actual == expected


def post(client: httpx.Client, route: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(dispatch_url(route), content=json.dumps(body), headers=dispatch_headers())


def test_the_tables_cover_every_route() -> None:
    assert sorted(EXPECTED) == sorted(MISSING) == sorted(ROUTE_PATHS)


@pytest.mark.parametrize("route", ROUTE_PATHS)
def test_a_dify_payload_gets_the_plugins_answer(client: httpx.Client, route: str) -> None:
    response = post(client, route, payload(route, with_app_id=True))

    assert response.status_code == 200
    streamed = route not in ("model/polling/start", "model/polling/check")
    if streamed:
        assert response.headers["content-type"] == "text/event-stream"
        assert response.text.startswith("data: {") and response.text.endswith("}\n\n")
    else:
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        assert not response.text.endswith("\n")
    assert all(set(e) == {"code", "message", "data"} for e in envelopes(response.text))
    chunks, error = collect(response.text)
    assert error is None
    EXPECTED[route](chunks)


@pytest.mark.parametrize("route", ROUTE_PATHS)
def test_a_missing_required_field_gets_the_daemons_400(client: httpx.Client, route: str) -> None:
    field, key = MISSING[route]
    body = payload(route)
    del body["data"][field]

    response = post(client, route, body)

    assert_missing_member_400(response, key)


@pytest.mark.parametrize(
    "route", ["model/validate_provider_credentials", "model/validate_model_credentials"]
)
def test_refused_credentials_reach_dify_as_the_plugins_error(
    client: httpx.Client, route: str
) -> None:
    body = payload(route)
    body["data"]["credentials"] = {"api_key": "bad"}

    chunks, error = collect(post(client, route, body).text)

    assert chunks == []
    assert error is not None and error.error_type == "CredentialsValidateFailedError"
    assert "api_key 'bad' is rejected" in error.message
