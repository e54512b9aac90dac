"""Property tests: Dify's bodies, the daemon's rules and the SDK's input agree.

The bodies come from the package's own strategies (emulator.testing.strategies), aimed through
a recording wrapper that keeps the exact line each plugin gets: the model routes at the bundled
echo plugin, the other families at a stand-in that ends each session at once (what is checked
there is the daemon's side: binding, the 400s, the line forwarded).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from starlette.testclient import TestClient

from dify_client import envelopes
from emulator.config import EXAMPLE_PLUGIN, Settings
from emulator.contract import wrapper
from emulator.contract.export import request_schema, response_schema
from emulator.contract.gotypes import Go
from emulator.contract.routes import FAMILY_ROUTES, MODEL_ROUTES, Route
from emulator.runtime import InProcessPlugin
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app
from emulator.testing.strategies import ABSENT, VARY, Mutation, mutations, payloads
from helpers import KEY, dispatch_headers, dispatch_url

ECHO_MODELS = {
    "llm": "echo-1",
    "text_embedding": "echo-embed",
    "multimodal_embedding": "echo-embed",
    "rerank": "echo-rerank",
    "multimodal_rerank": "echo-rerank",
    "tts": "echo-tts",
    "speech2text": "echo-stt",
    "moderation": "echo-moderation",
    "model": "echo-1",
}
PROPERTY = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class RecordingPlugin:
    """The real echo plugin, keeping the last request line it was handed."""

    start_may_wait = False

    def __init__(self, plugin: InProcessPlugin) -> None:
        self.plugin = plugin
        self.identity = plugin.identity
        self.directory = plugin.directory
        self.lines: list[str] = []

    def send(self, line: str) -> Any:
        return self.plugin.send(line)

    def request_rejection(self, line: str) -> str | None:
        return self.plugin.request_rejection(line)

    def start(self, line: str, on_event: Any) -> Any:
        self.lines.append(line)
        return self.plugin.start(line, on_event)


@pytest.fixture(scope="module")
def recorder() -> RecordingPlugin:
    return RecordingPlugin(InProcessPlugin.load(EXAMPLE_PLUGIN))


@pytest.fixture(scope="module")
def echo(recorder: RecordingPlugin) -> Iterator[httpx.Client]:
    app = create_app(Settings(key=KEY), PluginSet([recorder]))  # type: ignore[list-item]
    with TestClient(app, base_url="http://daemon") as client:
        yield client


def echo_fields(route: Route) -> dict[str, str]:
    fields = {"provider": "echo"}
    if route.path != "model/validate_provider_credentials":
        fields["model"] = ECHO_MODELS[route.path.split("/")[0]]
    return fields


def routes_and_bodies(app_id: Any = VARY) -> st.SearchStrategy[tuple[Route, dict[str, Any]]]:
    return st.sampled_from(MODEL_ROUTES).flatmap(
        lambda route: payloads(route, app_id=app_id, **echo_fields(route)).map(
            lambda body: (route, body)
        )
    )


def post(client: httpx.Client, route: Route, body: Any) -> httpx.Response:
    return client.post(
        dispatch_url(route.path), content=json.dumps(body), headers=dispatch_headers()
    )


def assert_carried(sent: Any, forwarded: Any, path: str = "data") -> None:
    """Everything sent reaches the plugin; Go only adds the zero values of unsent fields."""
    if isinstance(sent, dict):
        for key, value in sent.items():
            assert key in forwarded, f"{path}.{key} was lost"
            assert_carried(value, forwarded[key], f"{path}.{key}")
    elif isinstance(sent, list):
        assert isinstance(forwarded, list) and len(forwarded) == len(sent), path
        for index, (one, other) in enumerate(zip(sent, forwarded, strict=True)):
            assert_carried(one, other, f"{path}[{index}]")
    elif sent is None:
        assert forwarded in (None, ""), f"{path}: null became {forwarded!r}"
    elif isinstance(sent, float):
        # Go prints a whole float64 without a point: 1.0 reaches the plugin as 1, same value.
        assert forwarded == sent, f"{path}: {sent!r} -> {forwarded!r}"
    else:
        assert forwarded == sent and type(forwarded) is type(sent), (
            f"{path}: {sent!r} -> {forwarded!r}"
        )


@PROPERTY
@given(routes_and_bodies())
def test_valid_bodies_reach_the_plugin_intact_and_answers_fit_the_schema(
    echo: httpx.Client, recorder: RecordingPlugin, case: tuple[Route, dict[str, Any]]
) -> None:
    route, body = case

    response = post(echo, route, body)

    assert response.status_code in ((200,) if route.streamed else (200, 500)), response.text
    assert response.headers.get_list("x-emulator-warning") == []
    assert Draft202012Validator(request_schema(route)).is_valid(body)
    forwarded = json.loads(recorder.lines[-1])
    assert forwarded["app_id"] == body.get("app_id")
    assert forwarded["conversation_id"] == body.get("conversation_id")
    assert_carried(body["data"], forwarded["data"])
    schema = Draft202012Validator(response_schema(route))
    for envelope in envelopes(response.text):
        if envelope["code"] == 0:
            assert list(schema.iter_errors(envelope["data"])) == []


@PROPERTY
@given(st.sampled_from(MODEL_ROUTES).flatmap(lambda route: mutations(route, **echo_fields(route))))
def test_each_mutation_is_refused_or_taken_as_the_daemon_does(
    echo: httpx.Client, mutation: Mutation
) -> None:
    assert_mutation_judged(echo, mutation)


def assert_mutation_judged(client: httpx.Client, mutation: Mutation) -> None:
    route = next(route for route in MODEL_ROUTES + FAMILY_ROUTES if route.path == mutation.route)

    response = post(client, route, mutation.body)

    warnings = response.headers.get_list("x-emulator-warning")
    coerced = [w for w in warnings if not w.startswith("sdk_rejects")]
    taken_as_is = response.status_code != 400 and not coerced
    assert Draft202012Validator(request_schema(route)).is_valid(mutation.body) is taken_as_is
    if mutation.rejected_field is not None:
        assert response.status_code == 400, mutation.description
        message = json.loads(response.json()["message"])["message"]
        assert f".{mutation.rejected_field}" in message, (mutation.description, message)
    else:
        assert response.status_code < 500 or daemon_answers_500(route, response), (
            mutation.description
        )
        if mutation.warning is not None:
            assert any(w.startswith(mutation.warning) for w in warnings), mutation.description
    assert client.get("/health/check").status_code == 200


def daemon_answers_500(route: Route, response: httpx.Response) -> bool:
    """The polling routes answer a plugin's error with HTTP 500, as the daemon does."""
    error_type = json.loads(response.json()["message"])["error_type"]
    return not route.streamed and error_type == "PluginInvokeError"


def sdk_request_classes() -> dict[str, Any]:
    """The SDK's request classes, by action, named here rather than read from its router."""
    from dify_plugin.core.entities.plugin import request

    return {
        "invoke_llm": request.ModelInvokeLLMRequest,
        "get_llm_num_tokens": request.ModelGetLLMNumTokens,
        "start_polling": request.ModelStartPollingRequest,
        "check_polling": request.ModelCheckPollingRequest,
        "invoke_text_embedding": request.ModelInvokeTextEmbeddingRequest,
        "get_text_embedding_num_tokens": request.ModelGetTextEmbeddingNumTokens,
        "invoke_multimodal_embedding": request.ModelInvokeMultimodalEmbeddingRequest,
        "invoke_rerank": request.ModelInvokeRerankRequest,
        "invoke_multimodal_rerank": request.ModelInvokeMultimodalRerankRequest,
        "invoke_tts": request.ModelInvokeTTSRequest,
        "get_tts_model_voices": request.ModelGetTTSVoices,
        "invoke_speech2text": request.ModelInvokeSpeech2TextRequest,
        "invoke_moderation": request.ModelInvokeModerationRequest,
        "validate_provider_credentials": request.ModelValidateProviderCredentialsRequest,
        "validate_model_credentials": request.ModelValidateModelCredentialsRequest,
        "get_ai_model_schemas": request.ModelGetAIModelSchemas,
    }


def sdk_refuses(line: str) -> bool:
    data = json.loads(line)["data"]
    try:
        sdk_request_classes()[data["action"]](**data)
    except Exception:
        return True
    return False


@st.composite
def nulled(draw: st.DrawFn) -> tuple[Route, dict[str, Any]]:
    """A valid body with some members set to null: the daemon takes them, the SDK may not."""
    route, body = draw(routes_and_bodies())
    names = sorted(body["data"])
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        body["data"][name] = None
    return route, body


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(nulled())
def test_the_sdk_gap_is_named_exactly_when_the_sdk_refuses(
    echo: httpx.Client, recorder: RecordingPlugin, case: tuple[Route, dict[str, Any]]
) -> None:
    route, body = case

    response = post(echo, route, body)

    if response.status_code == 400:
        return  # a required member nulled: the daemon refused, nothing reached the SDK
    named = any(
        w.startswith("sdk_rejects") for w in response.headers.get_list("x-emulator-warning")
    )
    assert named is sdk_refuses(recorder.lines[-1])


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payloads("llm/invoke", app_id=ABSENT, provider="echo", model="echo-1"))
def test_a_dify_that_never_sends_app_id_is_served_and_the_plugin_sees_none(
    echo: httpx.Client, body: dict[str, Any]
) -> None:
    response = post(echo, MODEL_ROUTES[0], {**body, "data": {**body["data"], "stream": True}})

    first = envelopes(response.text)[0]["data"]
    assert json.loads(first["delta"]["message"]["content"])["app_id"] is None


def test_a_broken_model_fails_the_properties(
    echo: httpx.Client, recorder: RecordingPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """app_id made a required string, as a careless contract change would: caught at once."""
    broken = dict(wrapper._WRAPPER_FIELDS)
    broken["app_id"] = (Annotated[str, Go("AppID", validate="required")], "")
    monkeypatch.setattr(wrapper, "_WRAPPER_FIELDS", broken)
    wrapper.wrapper_for.cache_clear()
    try:
        with pytest.raises((AssertionError, ExceptionGroup)):
            test_valid_bodies_reach_the_plugin_intact_and_answers_fit_the_schema(echo, recorder)
    finally:
        monkeypatch.undo()
        wrapper.wrapper_for.cache_clear()


def test_fixing_a_field_the_route_lacks_is_an_error() -> None:
    with pytest.raises(ValueError, match="has no data field model"):
        payloads("model/validate_provider_credentials", model="x")


@settings(max_examples=20)
@given(payloads("llm/invoke", app_id=None))
def test_app_id_can_be_fixed_to_null(body: dict[str, Any]) -> None:
    assert body["app_id"] is None


# The other families -----------------------------------------------------------------------


class EndingPlugin:
    """Stands in for any plugin: keeps the line it is handed and ends the session at once."""

    start_may_wait = False

    def __init__(self, like: RecordingPlugin) -> None:
        self.identity = like.identity
        self.directory = like.directory
        self.lines: list[str] = []

    def send(self, line: str) -> None:
        """Answers to calls back into Dify: this plugin never makes one."""

    def request_rejection(self, line: str) -> str | None:
        return None

    def start(self, line: str, on_event: Any) -> None:
        self.lines.append(line)
        session_id = json.loads(line)["session_id"]
        on_event(
            json.dumps(
                {"session_id": session_id, "event": "session", "data": {"type": "end", "data": {}}}
            )
        )


@pytest.fixture(scope="module")
def ending(recorder: RecordingPlugin) -> EndingPlugin:
    return EndingPlugin(recorder)


@pytest.fixture(scope="module")
def families(ending: EndingPlugin) -> Iterator[httpx.Client]:
    app = create_app(Settings(key=KEY), PluginSet([ending]))  # type: ignore[list-item]
    with TestClient(app, base_url="http://daemon") as client:
        yield client


@PROPERTY
@given(st.sampled_from(FAMILY_ROUTES).flatmap(lambda r: payloads(r).map(lambda b: (r, b))))
def test_family_bodies_reach_the_plugin_intact(
    families: httpx.Client, ending: EndingPlugin, case: tuple[Route, dict[str, Any]]
) -> None:
    route, body = case

    response = post(families, route, body)

    assert (response.status_code, response.text) == (200, ""), response.text
    assert response.headers.get_list("x-emulator-warning") == []
    assert Draft202012Validator(request_schema(route)).is_valid(body)
    forwarded = json.loads(ending.lines[-1])
    assert forwarded["app_id"] == body.get("app_id")
    assert (forwarded["data"]["type"], forwarded["data"]["action"]) == (
        route.access_type,
        route.action,
    )
    assert_carried(body["data"], forwarded["data"])


@PROPERTY
@given(st.sampled_from(FAMILY_ROUTES).flatmap(mutations))
def test_each_family_mutation_is_refused_or_taken_as_the_daemon_does(
    families: httpx.Client, mutation: Mutation
) -> None:
    assert_mutation_judged(families, mutation)
