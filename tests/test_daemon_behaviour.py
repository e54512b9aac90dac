"""The daemon's checks, error shapes and stream edges, as Dify meets them."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from dify_client import DaemonError, collect, envelopes
from emulator.config import Settings
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app
from helpers import ECHO, KEY, dispatch_headers, dispatch_url, payload

UNAUTHORIZED = {
    "code": -401,
    "message": (
        '{"message":"unauthorized","error_type":"PluginDaemonUnauthorizedError","args":null}'
    ),
    "data": None,
}


def post(client: httpx.Client, route: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    content = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(dispatch_url(route), content=content, headers=headers)


def llm_body(model: str = "echo-1", **data: Any) -> dict[str, Any]:
    body = payload("llm/invoke", with_app_id=True)
    body["data"].update(model=model, **data)
    return body


def nested_message(response: httpx.Response) -> dict[str, Any]:
    return json.loads(response.json()["message"])  # type: ignore[no-any-return]


# The check order: key, plugin id, installation, validation --------------------------------


@pytest.mark.parametrize("key", [None, "", "wrong", KEY.upper()])
def test_a_wrong_or_missing_key_is_401(any_client: httpx.Client, key: str | None) -> None:
    headers = dispatch_headers()
    if key is None:
        del headers["X-Api-Key"]
    else:
        headers["X-Api-Key"] = key

    response = post(any_client, "llm/invoke", {"not": "even valid"}, headers)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == UNAUTHORIZED


def test_the_key_header_name_is_case_insensitive(client: httpx.Client) -> None:
    headers = dispatch_headers()
    headers["x-API-key"] = headers.pop("X-Api-Key")

    assert post(client, "llm/invoke", llm_body(), headers).status_code == 200


@pytest.mark.parametrize("plugin_id", [None, ""])
def test_no_plugin_id_is_400_before_the_body_is_read(
    any_client: httpx.Client, plugin_id: str | None
) -> None:
    headers = dispatch_headers()
    if plugin_id is None:
        del headers["X-Plugin-ID"]
    else:
        headers["X-Plugin-ID"] = plugin_id

    response = post(any_client, "llm/invoke", "not json", headers)

    assert response.status_code == 400
    assert nested_message(response) == {
        "message": "plugin_id is required",
        "error_type": "PluginDaemonBadRequestError",
        "args": None,
    }


def test_an_unknown_plugin_is_404_before_the_body_is_validated(any_client: httpx.Client) -> None:
    response = post(any_client, "llm/invoke", "not json", dispatch_headers("nobody/nothing"))

    assert response.status_code == 404
    assert response.json()["code"] == -404
    assert nested_message(response) == {
        "message": "plugin not found",
        "error_type": "PluginNotFoundError",
        "args": None,
    }


def test_every_tenant_sees_every_plugin(client: httpx.Client) -> None:
    for tenant in ("t-1", "a0f1c2d3-0000-4000-8000-000000000000"):
        response = client.post(
            dispatch_url("llm/invoke", tenant),
            content=json.dumps(llm_body()),
            headers=dispatch_headers(),
        )
        assert response.status_code == 200


def test_malformed_json_is_the_validators_400_not_a_parse_error(client: httpx.Client) -> None:
    response = post(client, "llm/invoke", '{"data": {"provider": "echo",', dispatch_headers())

    assert response.status_code == 400
    assert [line.split("'")[3] for line in nested_message(response)["message"].split("\n")] == [
        "Provider",
        "Model",
        "ModelType",
    ]
    assert any("malformed_json $" in w for w in response.headers.get_list("x-emulator-warning"))


def test_a_form_content_type_means_the_body_is_never_read(client: httpx.Client) -> None:
    headers = {**dispatch_headers(), "Content-Type": "text/plain"}

    response = post(client, "llm/invoke", llm_body(), headers)

    assert response.status_code == 400
    assert "Provider' failed on the 'required' tag" in nested_message(response)["message"]


def test_a_wrong_model_type_fails_the_eq_rule(client: httpx.Client) -> None:
    response = post(client, "llm/invoke", llm_body(model_type="rerank"), dispatch_headers())

    assert response.status_code == 400
    assert nested_message(response)["message"].endswith(
        "RequestInvokeLLM].Data.ModelType' "
        "Error:Field validation for 'ModelType' failed on the 'eq' tag"
    )


def test_unknown_routes_and_methods_get_gins_no_route(client: httpx.Client) -> None:
    for method, path in [
        ("POST", "/plugin/t/dispatch/llm/nothing"),
        ("GET", dispatch_url("llm/invoke")),
    ]:
        response = client.request(method, path, headers=dispatch_headers())
        assert response.status_code == 404
        assert response.text == '{"code":"not_found","message":"route not found"}'


def test_a_trailing_slash_is_redirected_as_gin_does(client: httpx.Client) -> None:
    response = client.post(
        dispatch_url("llm/invoke") + "/", headers=dispatch_headers(), follow_redirects=False
    )

    assert response.status_code == 307
    assert response.headers["location"].endswith(dispatch_url("llm/invoke"))


def test_the_health_check_needs_no_key(any_client: httpx.Client) -> None:
    response = any_client.get("/health/check")

    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok" and list(health) == sorted(health)
    assert any(p.startswith("emulator/echo:0.1.0@") for p in health["plugins"])


# Warnings and strict mode -----------------------------------------------------------------


def test_a_clean_dify_payload_carries_no_warning_header(client: httpx.Client) -> None:
    body = llm_body()
    for message in body["data"]["prompt_messages"]:
        del message["name"]  # Dify's null name is itself a silent coercion

    response = post(client, "llm/invoke", body, dispatch_headers())

    assert "x-emulator-warning" not in response.headers


def test_each_silent_coercion_is_named_in_a_header(client: httpx.Client) -> None:
    body = llm_body(stream="yes", surprise=1)

    warnings = post(client, "llm/invoke", body, dispatch_headers()).headers.get_list(
        "x-emulator-warning"
    )

    assert "type_mismatch $.data.stream: expected bool, got string; the daemon skips it" in warnings
    assert (
        "unknown_key $.data.surprise: expected a field of RequestInvokeLLM, got unknown key "
        "'surprise'; the daemon drops it"
    ) in warnings


def test_strict_mode_turns_a_warning_into_the_daemons_400(plugins: PluginSet) -> None:
    strict = create_app(Settings(key=KEY, strict=True), plugins)
    from starlette.testclient import TestClient

    with TestClient(strict) as client:
        response = post(client, "llm/invoke", llm_body(top_n="3"), dispatch_headers())

    assert response.status_code == 400
    error = nested_message(response)
    assert error["error_type"] == "PluginDaemonBadRequestError"
    assert "unknown_key $.data.top_n" in error["message"]


# Inside the stream ------------------------------------------------------------------------


def test_a_plugin_error_after_two_chunks_decodes_as_dify_decodes_it(
    any_client: httpx.Client,
) -> None:
    body = llm_body(model="boom", provider="raising")

    response = post(any_client, "llm/invoke", body, dispatch_headers("tests/raising"))

    assert response.status_code == 200
    chunks, error = collect(response.text)
    assert [c["delta"]["message"]["content"] for c in chunks] == ["one", "two"]
    assert error == DaemonError("InvokeBadRequestError", "boom after two chunks")
    last = envelopes(response.text)[-1]
    inner = json.loads(json.loads(last["message"])["message"])
    assert list(inner) == ["args", "error_type", "message"]  # Go sorts the plugin's error keys
    assert "traceback" in inner["args"]
    again = post(any_client, "llm/invoke", llm_body(), dispatch_headers())
    assert collect(again.text)[1] is None


def test_plugins_with_the_same_module_names_each_run_their_own_code(
    any_client: httpx.Client,
) -> None:
    for plugin_id, greeting in (("twins/twin-a", "I am A"), ("twins/twin-b", "I am B")):
        model = plugin_id.split("/")[1]
        body = llm_body(model=model, provider="twin")
        chunks, error = collect(
            post(any_client, "llm/invoke", body, dispatch_headers(plugin_id)).text
        )
        assert error is None
        texts = [c["delta"]["message"]["content"] for c in chunks]
        assert texts == [greeting, "app_id=app-9f3c"]


def test_the_daemons_timeout_item_ends_a_stream_that_runs_too_long(
    plugins: PluginSet, tmp_path: Path
) -> None:
    from starlette.testclient import TestClient

    body = llm_body(
        model="forever", provider="raising", credentials={"closed_marker": str(tmp_path / "m")}
    )
    with TestClient(create_app(Settings(key=KEY, max_execution_timeout=0.3), plugins)) as client:
        response = post(client, "llm/invoke", body, dispatch_headers("tests/raising"))

    chunks, error = collect(response.text)
    assert chunks and error == DaemonError("PluginDaemonInternalServerError", "killed by timeout")
    wait_for(lambda: (tmp_path / "m").exists())
    assert (tmp_path / "m").read_text() == "closed app_id=app-9f3c"


def test_a_client_that_goes_away_closes_the_plugins_stream(live_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "closed"
    body = llm_body(model="forever", provider="raising", credentials={"closed_marker": str(marker)})
    with (
        httpx.Client(base_url=live_url) as client,
        client.stream(
            "POST",
            dispatch_url("llm/invoke"),
            content=json.dumps(body),
            headers=dispatch_headers("tests/raising"),
        ) as response,
    ):
        lines = response.iter_lines()
        assert next(lines).startswith("data: {")

    wait_for(marker.exists)
    assert marker.read_text() == "closed app_id=app-9f3c"
    wait_for(
        lambda: (
            not any(
                t.name.startswith("plugin tests/raising session") for t in threading.enumerate()
            )
        )
    )


def wait_for(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# Edges found by trying to break it ---------------------------------------------------------


def test_an_empty_tenant_is_the_daemons_400_after_the_key_check(client: httpx.Client) -> None:
    url = "/plugin//dispatch/llm/invoke"

    no_key = client.post(url, content=json.dumps(llm_body()), headers={"X-Plugin-ID": ECHO})
    no_tenant = client.post(url, content=json.dumps(llm_body()), headers=dispatch_headers())

    assert no_key.status_code == 401
    assert no_tenant.status_code == 400
    assert nested_message(no_tenant)["message"] == "tenant_id is required"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", dispatch_url("llm/invoke") + "/?x=1", 307),
        ("GET", dispatch_url("llm/invoke") + "/", 404),
        ("POST", dispatch_url("llm/invoke") + "//", 404),
        ("POST", "/health/check/", 404),
        ("GET", "/health/check/", 301),
    ],
)
def test_trailing_slashes_redirect_only_where_gin_would(
    client: httpx.Client, method: str, path: str, status: int
) -> None:
    response = client.request(method, path, headers=dispatch_headers(), follow_redirects=False)

    assert response.status_code == status
    if status == 307:
        assert response.headers["location"].endswith(dispatch_url("llm/invoke") + "?x=1")


@pytest.mark.parametrize("depth", [250, 2000])
def test_a_body_too_deep_for_a_plugin_gets_an_envelope_and_the_server_keeps_serving(
    client: httpx.Client, plugins: PluginSet, depth: int
) -> None:
    text = json.dumps(llm_body())
    deep = text[:-1] + ', "context": {"x": ' + "[" * depth + "]" * depth + "}}"
    skipped = text[:-1] + ', "junk": ' + "[" * depth + "]" * depth + "}"

    too_deep = post(client, "llm/invoke", deep, dispatch_headers())
    ignored = post(client, "llm/invoke", skipped, dispatch_headers())

    assert too_deep.status_code == 500
    error = nested_message(too_deep)
    assert error["error_type"] == "PluginDaemonInternalServerError"
    assert "killed by timeout" in error["message"]
    assert collect(ignored.text)[1] is None  # an unknown key is skipped, however deep
    assert plugins.active_requests == 0


def test_warning_headers_are_bounded_in_number_and_length(client: httpx.Client) -> None:
    body = llm_body(**{f"unknown_{n}": n for n in range(100)})
    body["app_id"] = {"padding": "x" * 10_000}

    warnings = post(client, "llm/invoke", body, dispatch_headers()).headers.get_list(
        "x-emulator-warning"
    )

    assert len(warnings) == 17
    assert warnings[-1] == "more_warnings $: 85 more not shown"
    assert max(len(w) for w in warnings) <= 400


def test_what_the_daemon_accepts_but_the_sdk_refuses_is_named(client: httpx.Client) -> None:
    response = post(client, "llm/invoke", llm_body(credentials=None), dispatch_headers())

    warnings = response.headers.get_list("x-emulator-warning")
    assert any(
        w.startswith(
            "sdk_rejects $.data: expected what the plugin's SDK accepts, got "
            "ModelInvokeLLMRequest refuses it: ValidationError"
        )
        for w in warnings
    )
    chunks, error = collect(response.text)
    assert chunks == [] and error is not None and error.error_type == "ValidationError"


def test_a_payload_the_sdk_accepts_carries_no_sdk_warning(client: httpx.Client) -> None:
    for route in ("llm/invoke", "text_embedding/invoke", "model/polling/start"):
        response = post(client, route, payload(route, with_app_id=True), dispatch_headers())
        assert not any("sdk_rejects" in w for w in response.headers.get_list("x-emulator-warning"))
