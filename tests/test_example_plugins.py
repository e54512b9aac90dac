"""The example plugins of fixtures/plugins, driven with the daemon's request lines.

Each plugin echoes what it received; these tests read the frames its SDK writes: the stream
items, the errors and the closing `end`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from starlette.testclient import TestClient

from dify_client import items
from emulator.config import Settings
from emulator.contract.routes import ROUTES, ROUTES_BY_PATH
from emulator.contract.wrapper import bind
from emulator.runtime import InProcessPlugin, StreamClosed
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app
from emulator.sessions import new_session_id, request_line
from helpers import FIXTURE_PLUGINS, TENANT, dispatch_headers, dispatch_url

Frame = dict[str, Any]

USER = "user-7"
IDS = {"conversation_id": "conv-1", "message_id": "msg-1", "app_id": "app-1", "endpoint_id": None}
NO_IDS: dict[str, Any] = dict.fromkeys(IDS)
GOOD = {"api_key": "good"}
# A fixed expiry the plugins use (2100-01-01 UTC), so their answers do not change between runs.
EXPIRES_AT = 4102444800


def daemon_line(
    path: str,
    data: dict[str, Any],
    ids: dict[str, Any] = NO_IDS,
    context: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """The line the daemon writes to the plugin for this dispatch body, and its session id."""
    route = ROUTES_BY_PATH[path]
    body = json.dumps({"user_id": USER, **ids, "context": context, "data": data})
    bound = bind(route.data_model, body.encode(), TENANT, "application/json")
    assert not bound.validation_errors, bound.validation_errors
    session_id = new_session_id()
    return request_line(route, bound.values, session_id), session_id


def run(plugin: InProcessPlugin, line: str) -> list[Frame]:
    frames: list[Frame] = []
    running = plugin.start(line, lambda text: frames.append(json.loads(text)))
    assert running.join(timeout=10), "the plugin did not finish within 10 s"
    return frames


def kinds(frames: list[Frame]) -> list[str]:
    return [frame["data"]["type"] if frame["event"] == "session" else "!" for frame in frames]


def streamed(frames: list[Frame]) -> list[Any]:
    """The stream items, in order, after checking that the request ended cleanly."""
    assert kinds(frames)[-1:] == ["end"], f"no closing end frame: {frames}"
    assert "error" not in kinds(frames), f"the plugin failed: {frames}"
    return [frame["data"]["data"] for frame in frames if frame["data"]["type"] == "stream"]


def plugin_error(frames: list[Frame]) -> dict[str, Any]:
    assert kinds(frames) == ["error", "end"], f"expected one error, then end: {frames}"
    return frames[0]["data"]["data"]  # type: ignore[no-any-return]


def session_seen(session_id: str, ids: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"session_id": session_id, **ids, **extra}


def blob_of(size: int) -> bytes:
    """The example plugins' blob content: bytes 0 to 250, over and over."""
    return bytes(i % 251 for i in range(size))


def raw_http(request_line: str, body: bytes = b"", headers: dict[str, str] | None = None) -> str:
    """An HTTP request as the hex string Dify sends (oauth callbacks, trigger webhooks)."""
    head = [request_line, "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if body:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode().hex() + body.hex()


def load(name: str) -> InProcessPlugin:
    return InProcessPlugin.load(FIXTURE_PLUGINS / name)


@pytest.fixture(scope="module")
def tool_echo() -> InProcessPlugin:
    return load("tool_echo")


@pytest.fixture(scope="module")
def agent_echo() -> InProcessPlugin:
    return load("agent_echo")


@pytest.fixture(scope="module")
def datasource_echo() -> InProcessPlugin:
    return load("datasource_echo")


@pytest.fixture(scope="module")
def trigger_echo() -> InProcessPlugin:
    return load("trigger_echo")


@pytest.mark.parametrize("name", ["tool_echo", "agent_echo", "datasource_echo", "trigger_echo"])
def test_each_example_loads_under_its_manifest_id(name: str) -> None:
    identity = load(name).identity

    assert (identity.plugin_id, identity.version) == (f"emulator/{name}", "0.1.0")


# tool_echo


def invoke_tool(tool: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "provider": "tool_echo",
        "tool": tool,
        "tool_parameters": parameters,
        "credentials": GOOD,
        "credential_type": "api-key",
    }


@pytest.mark.parametrize("ids", [IDS, NO_IDS], ids=["ids", "no_ids"])
def test_echo_ids_reports_the_session_and_the_parameters(
    tool_echo: InProcessPlugin, ids: dict[str, Any]
) -> None:
    parameters = {"text": "hello", "channel": "general"}
    line, session_id = daemon_line("tool/invoke", invoke_tool("echo_ids", parameters), ids)

    as_json, as_text = streamed(run(tool_echo, line))

    expected = {
        "session": session_seen(session_id, ids, user_id=USER),
        "credential_type": "api-key",
        "tool_parameters": parameters,
    }
    assert as_json == {"type": "json", "message": {"json_object": expected}, "meta": None}
    assert as_text["type"] == "text"
    assert json.loads(as_text["message"]["text"]) == expected


@pytest.mark.parametrize(("size", "chunks"), [(20000, 3), (8192, 1), (8193, 2)])
def test_blob_arrives_in_8_kib_chunks_that_rebuild_it(
    tool_echo: InProcessPlugin, size: int, chunks: int
) -> None:
    line, _ = daemon_line("tool/invoke", invoke_tool("blob", {"size": size}))

    items = streamed(run(tool_echo, line))

    assert [item["type"] for item in items] == ["blob_chunk"] * (chunks + 1)
    messages = [item["message"] for item in items]
    parts = [base64.b64decode(message["blob"]) for message in messages]
    assert [message["sequence"] for message in messages] == list(range(chunks + 1))
    assert [message["end"] for message in messages] == [False] * chunks + [True]
    assert {message["total_length"] for message in messages} == {size}
    assert len({message["id"] for message in messages}) == 1
    assert max(len(part) for part in parts) <= 8192 and parts[-1] == b""
    assert b"".join(parts) == blob_of(size)
    assert items[0]["meta"] == {"mime_type": "application/octet-stream", "filename": "echo.bin"}


def test_storage_get_calls_back_into_dify_for_its_key(tool_echo: InProcessPlugin) -> None:
    line, _ = daemon_line("tool/invoke", invoke_tool("storage_get", {"key": "greeting"}))
    frames: list[Frame] = []

    def stop_at_the_call(text: str) -> None:
        frames.append(json.loads(text))
        if frames[-1]["data"]["type"] == "invoke":
            raise StreamClosed("this test answers no call back into Dify")

    assert tool_echo.start(line, stop_at_the_call).join(timeout=10)

    assert kinds(frames) == ["invoke"]
    call = frames[0]["data"]["data"]
    assert (call["type"], call["request"]) == ("storage", {"opt": "get", "key": "greeting"})


def test_dynamic_select_offers_channels(tool_echo: InProcessPlugin) -> None:
    data = {
        "provider": "tool_echo",
        "provider_action": "echo_ids",
        "parameter": "channel",
        "credentials": GOOD,
        "credential_type": "api-key",
    }
    line, _ = daemon_line("dynamic_select/fetch_parameter_options", data)

    (result,) = streamed(run(tool_echo, line))

    assert [option["value"] for option in result["options"]] == [
        "general",
        "random",
        f"user-{USER}",
    ]
    assert result["options"][0]["label"]["en_US"] == "general"


def test_dynamic_select_of_another_parameter_is_the_plugins_error(
    tool_echo: InProcessPlugin,
) -> None:
    data = {"provider": "tool_echo", "provider_action": "echo_ids", "parameter": "text"}
    line, _ = daemon_line("dynamic_select/fetch_parameter_options", {**data, "credentials": {}})

    error = plugin_error(run(tool_echo, line))

    assert (error["error_type"], error["message"]) == (
        "ValueError",
        "echo_ids: no dynamic options for 'text'",
    )


def test_tool_credentials_good_pass(tool_echo: InProcessPlugin) -> None:
    line, _ = daemon_line(
        "tool/validate_credentials", {"provider": "tool_echo", "credentials": GOOD}
    )

    assert streamed(run(tool_echo, line)) == [{"result": True}]


@pytest.mark.parametrize("credentials", [{"api_key": "bad"}, {}])
def test_tool_credentials_other_fail_with_the_sdks_error(
    tool_echo: InProcessPlugin, credentials: dict[str, Any]
) -> None:
    data = {"provider": "tool_echo", "credentials": credentials}
    line, _ = daemon_line("tool/validate_credentials", data)

    error = plugin_error(run(tool_echo, line))

    assert error["error_type"] == "ToolProviderCredentialValidationError"
    assert error["message"] == "tool_echo: api_key must be 'good'"


def test_runtime_parameters_get_only_end_as_the_sdk_routes_none(
    tool_echo: InProcessPlugin,
) -> None:
    data = {"provider": "tool_echo", "tool": "echo_ids", "credentials": GOOD}
    line, _ = daemon_line("tool/get_runtime_parameters", data)

    assert kinds(run(tool_echo, line)) == ["end"]


def oauth(**fields: Any) -> dict[str, Any]:
    return {
        "provider": "tool_echo",
        "redirect_uri": "http://127.0.0.1/callback",
        "system_credentials": {"client_id": "client-1", "client_secret": "s"},
        **fields,
    }


def test_oauth_authorization_url_carries_the_redirect_and_client(
    tool_echo: InProcessPlugin,
) -> None:
    line, _ = daemon_line("oauth/get_authorization_url", oauth())

    (result,) = streamed(run(tool_echo, line))

    query = urlencode(
        {"client_id": "client-1", "redirect_uri": "http://127.0.0.1/callback", "state": "tool_echo"}
    )
    assert result == {"authorization_url": f"https://auth.tool-echo.invalid/authorize?{query}"}


def test_oauth_credentials_come_from_the_callback_request(tool_echo: InProcessPlugin) -> None:
    callback = raw_http("GET /callback?code=abc&state=tool_echo HTTP/1.1")
    line, _ = daemon_line("oauth/get_credentials", oauth(raw_http_request=callback))

    (result,) = streamed(run(tool_echo, line))

    assert result == {
        "metadata": {},
        "credentials": {
            "access_token": "token-abc",
            "client_id": "client-1",
            "redirect_uri": "http://127.0.0.1/callback",
            "callback": "GET /callback?code=abc&state=tool_echo",
        },
        "expires_at": EXPIRES_AT,
    }


def test_oauth_callback_without_a_code_is_the_sdks_oauth_error(
    tool_echo: InProcessPlugin,
) -> None:
    callback = raw_http("GET /callback?error=denied HTTP/1.1")
    line, _ = daemon_line("oauth/get_credentials", oauth(raw_http_request=callback))

    error = plugin_error(run(tool_echo, line))

    assert (error["error_type"], error["message"]) == (
        "ToolProviderOAuthError",
        "tool_echo: the callback has no code",
    )


def test_oauth_refresh_renews_the_token(tool_echo: InProcessPlugin) -> None:
    data = oauth(credentials={"access_token": "token-abc", "scope": "read"})
    line, _ = daemon_line("oauth/refresh_credentials", data)

    (result,) = streamed(run(tool_echo, line))

    assert result == {
        "credentials": {
            "access_token": "refreshed-token-abc",
            "scope": "read",
            "client_id": "client-1",
            "redirect_uri": "http://127.0.0.1/callback",
        },
        "expires_at": EXPIRES_AT,
    }


# agent_echo


def invoke_agent(parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "agent_strategy_provider": "agent_echo",
        "agent_strategy": "echo",
        "agent_strategy_params": parameters,
    }


@pytest.fixture(scope="module")
def agent_items(agent_echo: InProcessPlugin) -> Iterator[tuple[str, list[Any]]]:
    context = {"credentials": {"tool_credentials": {"tool_echo": "credential-1"}}}
    parameters = {"query": "hello", "blob_size": 20000}
    line, session_id = daemon_line("agent_strategy/invoke", invoke_agent(parameters), IDS, context)
    yield session_id, streamed(run(agent_echo, line))


def test_agent_echo_says_first_which_session_it_ran_in(
    agent_items: tuple[str, list[Any]],
) -> None:
    session_id, items = agent_items

    assert items[0]["type"] == "text"
    assert json.loads(items[0]["message"]["text"]) == session_seen(
        session_id,
        IDS,
        user_id=USER,
        context={"credentials": {"tool_credentials": {"tool_echo": "credential-1"}}},
    )


def test_agent_echo_then_gives_its_parameters_and_a_log(
    agent_items: tuple[str, list[Any]],
) -> None:
    _, items = agent_items

    assert items[1]["type"] == "text"
    assert json.loads(items[1]["message"]["text"]) == {"query": "hello", "blob_size": 20000}
    assert items[2]["type"] == "log"
    assert items[2]["message"]["id"] == "agent-echo-log"
    assert items[2]["message"]["status"] == "success"
    assert items[2]["message"]["data"] == {"parameters": ["blob_size", "query"]}


def test_agent_echo_sends_its_blob_as_chunks_the_daemon_can_join(
    agent_items: tuple[str, list[Any]],
) -> None:
    _, items = agent_items

    chunks = [item["message"] for item in items[3:]]
    assert [item["type"] for item in items[3:]] == ["blob_chunk"] * 4
    parts = [base64.b64decode(chunk["blob"]) for chunk in chunks]
    # What the daemon checks before joining (io_tunnel/agent_service.go): each part at most
    # 8192 bytes, one id, a total_length, and `end` on the last.
    assert max(len(part) for part in parts) <= 8192
    assert {(chunk["id"], chunk["total_length"]) for chunk in chunks} == {
        ("agent-echo-blob", 20000)
    }
    assert [chunk["end"] for chunk in chunks] == [False, False, False, True]
    assert b"".join(parts) == blob_of(20000)


# datasource_echo


@pytest.mark.parametrize("provider", ["website_echo", "document_echo", "drive_echo"])
def test_each_datasource_provider_accepts_only_the_good_key(
    datasource_echo: InProcessPlugin, provider: str
) -> None:
    good, _ = daemon_line(
        "datasource/validate_credentials", {"provider": provider, "credentials": GOOD}
    )
    bad, _ = daemon_line(
        "datasource/validate_credentials", {"provider": provider, "credentials": {}}
    )

    assert streamed(run(datasource_echo, good)) == [{"result": True}]
    error = plugin_error(run(datasource_echo, bad))
    assert error["error_type"] == "DatasourceCredentialValidationError"


def datasource(provider: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"provider": provider, "datasource": name, "credentials": GOOD, **fields}


def test_crawl_returns_one_page_describing_the_request(datasource_echo: InProcessPlugin) -> None:
    parameters = {"url": "http://127.0.0.1/docs"}
    data = datasource("website_echo", "crawl", datasource_parameters=parameters)
    line, session_id = daemon_line("datasource/get_website_crawl", data)

    (chunk,) = streamed(run(datasource_echo, line))

    result = chunk["result"]
    assert (result["status"], result["total"], result["completed"]) == ("completed", 1, 1)
    (page,) = result["web_info_list"]
    assert page["source_url"] == "http://127.0.0.1/docs"
    assert json.loads(page["content"]) == {
        "session": session_seen(session_id, NO_IDS, user_id=USER),
        "datasource_parameters": parameters,
    }


def test_document_pages_name_the_request_in_the_workspace(
    datasource_echo: InProcessPlugin,
) -> None:
    data = datasource("document_echo", "pages", datasource_parameters={"workspace": "ws-1"})
    line, session_id = daemon_line("datasource/get_online_document_pages", data)

    (response,) = streamed(run(datasource_echo, line))

    (workspace,) = response["result"]
    assert workspace["workspace_id"] == "ws-1"
    assert [page["page_id"] for page in workspace["pages"]] == ["page-1"]
    assert json.loads(workspace["workspace_name"]) == {
        "session": session_seen(session_id, NO_IDS, user_id=USER),
        "datasource_parameters": {"workspace": "ws-1"},
    }


def test_document_page_content_echoes_the_page(datasource_echo: InProcessPlugin) -> None:
    page = {"workspace_id": "ws-1", "page_id": "page-1", "type": "page"}
    line, session_id = daemon_line(
        "datasource/get_online_document_page_content",
        datasource("document_echo", "pages", page=page),
    )

    as_json, as_text = streamed(run(datasource_echo, line))

    assert as_json["message"]["json_object"] == {
        "session": session_seen(session_id, NO_IDS, user_id=USER),
        "page": page,
    }
    assert as_text["message"] == {"text": "content of ws-1/page-1"}


@pytest.mark.parametrize(
    ("max_keys", "names", "truncated"), [(1, ["a.txt"], True), (20, ["a.txt", "docs"], False)]
)
def test_drive_browsing_lists_files_under_the_prefix(
    datasource_echo: InProcessPlugin, max_keys: int, names: list[str], truncated: bool
) -> None:
    request = {
        "bucket": "b-1",
        "prefix": "root/",
        "max_keys": max_keys,
        "next_page_parameters": None,
    }
    line, _ = daemon_line(
        "datasource/online_drive_browse_files", datasource("drive_echo", "files", request=request)
    )

    (response,) = streamed(run(datasource_echo, line))

    (bucket,) = response["result"]
    assert bucket["bucket"] == "b-1" and bucket["is_truncated"] is truncated
    assert [file["name"] for file in bucket["files"]] == names
    assert bucket["files"][0] == {"id": "root/a.txt", "name": "a.txt", "size": 1, "type": "file"}
    assert bucket["next_page_parameters"] == {"echo": request}


def test_drive_download_is_a_blob_describing_the_request(datasource_echo: InProcessPlugin) -> None:
    request = {"bucket": "b-1", "id": "root/a.txt"}
    line, session_id = daemon_line(
        "datasource/online_drive_download_file", datasource("drive_echo", "files", request=request)
    )

    (item,) = streamed(run(datasource_echo, line))

    assert item["type"] == "blob"
    assert item["meta"] == {"file_name": "root/a.txt", "mime_type": "application/json"}
    assert json.loads(base64.b64decode(item["message"]["blob"])) == {
        "session": session_seen(session_id, NO_IDS, user_id=USER),
        "request": request,
    }


# trigger_echo

SUBSCRIPTION = {
    "expires_at": -1,
    "endpoint": "http://127.0.0.1/triggers/hook-1",
    "parameters": {"topic": "news"},
    "properties": {"external_id": "subscription-1"},
}
WEBHOOK = raw_http(
    "POST /triggers/hook-1?delivery=7 HTTP/1.1",
    b'{"ping": true}',
    {"Content-Type": "application/json", "X-Echo-User": "external-user-3"},
)


def trigger(**fields: Any) -> dict[str, Any]:
    return {"provider": "trigger_echo", "credentials": GOOD, "credential_type": "api-key", **fields}


def test_trigger_credentials_good_pass_others_fail(trigger_echo: InProcessPlugin) -> None:
    good, _ = daemon_line("trigger/validate_credentials", trigger())
    bad, _ = daemon_line("trigger/validate_credentials", trigger(credentials={"api_key": "x"}))

    assert streamed(run(trigger_echo, good)) == [{"result": True}]
    error = plugin_error(run(trigger_echo, bad))
    assert (error["error_type"], error["message"]) == (
        "TriggerProviderCredentialValidationError",
        "trigger_echo: api_key must be 'good'",
    )


def test_ping_event_variables_are_what_it_received(trigger_echo: InProcessPlugin) -> None:
    data = trigger(
        event="ping",
        subscription=SUBSCRIPTION,
        raw_http_request=WEBHOOK,
        parameters={"greeting": "hi"},
        payload={"delivery": 7},
    )
    line, session_id = daemon_line("trigger/invoke_event", data)

    (result,) = streamed(run(trigger_echo, line))

    assert result == {
        "variables": {
            "session": session_seen(session_id, NO_IDS),
            "parameters": {"greeting": "hi"},
            "payload": {"delivery": 7},
            "subscription": SUBSCRIPTION,
            "body": '{"ping": true}',
        },
        "cancelled": False,
    }


def test_dispatch_names_the_ping_event_and_answers_the_webhook(
    trigger_echo: InProcessPlugin,
) -> None:
    data = trigger(subscription=SUBSCRIPTION, raw_http_request=WEBHOOK)
    line, session_id = daemon_line("trigger/dispatch_event", data)

    (result,) = streamed(run(trigger_echo, line))

    assert (result["user_id"], result["events"]) == ("external-user-3", ["ping"])
    assert result["payload"] == {
        "session": session_seen(session_id, NO_IDS),
        "request": "POST /triggers/hook-1?delivery=7",
        "body": '{"ping": true}',
        "subscription_endpoint": SUBSCRIPTION["endpoint"],
    }
    response = bytes.fromhex(result["response"])
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b'\r\n\r\n{"received": true}')


def test_subscribe_returns_the_endpoint_with_its_properties(trigger_echo: InProcessPlugin) -> None:
    data = trigger(endpoint="http://127.0.0.1/triggers/hook-2", parameters={"topic": "news"})
    line, session_id = daemon_line("trigger/subscribe", data)

    (result,) = streamed(run(trigger_echo, line))

    assert result == {
        "subscription": {
            "expires_at": EXPIRES_AT,
            "endpoint": "http://127.0.0.1/triggers/hook-2",
            "parameters": {"topic": "news"},
            "properties": {
                "external_id": "subscription-1",
                "credential_type": "api-key",
                "session": session_seen(session_id, NO_IDS),
            },
        }
    }


def test_unsubscribe_reports_success(trigger_echo: InProcessPlugin) -> None:
    line, _ = daemon_line("trigger/unsubscribe", trigger(subscription=SUBSCRIPTION))

    assert streamed(run(trigger_echo, line)) == [
        {
            "subscription": {
                "success": True,
                "message": "unsubscribed http://127.0.0.1/triggers/hook-1",
            }
        }
    ]


def test_refresh_extends_the_subscription(trigger_echo: InProcessPlugin) -> None:
    line, _ = daemon_line("trigger/refresh", trigger(subscription=SUBSCRIPTION))

    (result,) = streamed(run(trigger_echo, line))

    properties = {**SUBSCRIPTION["properties"], "refreshed": True}  # type: ignore[dict-item]
    assert result == {
        "subscription": {**SUBSCRIPTION, "expires_at": EXPIRES_AT, "properties": properties}
    }


# Over HTTP: what Dify gets back through the emulated daemon


@pytest.fixture(scope="module")
def daemon(
    settings: Settings,
    tool_echo: InProcessPlugin,
    agent_echo: InProcessPlugin,
    datasource_echo: InProcessPlugin,
    trigger_echo: InProcessPlugin,
) -> Iterator[httpx.Client]:
    plugins = PluginSet([tool_echo, agent_echo, datasource_echo, trigger_echo])
    with TestClient(create_app(settings, plugins), base_url="http://daemon") as client:
        yield client


def dispatch(client: httpx.Client, route: str, data: dict[str, Any]) -> httpx.Response:
    plugin_id = "emulator/" + ROUTE_PLUGINS[route.split("/")[0]]
    body = json.dumps({"user_id": USER, "data": data})
    return client.post(dispatch_url(route), content=body, headers=dispatch_headers(plugin_id))


ROUTE_PLUGINS = {
    "tool": "tool_echo",
    "dynamic_select": "tool_echo",
    "oauth": "tool_echo",
    "agent_strategy": "agent_echo",
    "datasource": "datasource_echo",
    "trigger": "trigger_echo",
}
PAGE = {"workspace_id": "ws-1", "page_id": "page-1", "type": "page"}
HTTP_CASES = {
    "tool/invoke": invoke_tool("echo_ids", {"text": "hello"}),
    "tool/validate_credentials": {"provider": "tool_echo", "credentials": GOOD},
    "dynamic_select/fetch_parameter_options": {
        "provider": "tool_echo",
        "provider_action": "echo_ids",
        "parameter": "channel",
        "credentials": GOOD,
    },
    "oauth/get_authorization_url": oauth(),
    "oauth/get_credentials": oauth(raw_http_request=raw_http("GET /callback?code=c HTTP/1.1")),
    "oauth/refresh_credentials": oauth(credentials={"access_token": "token-c"}),
    "agent_strategy/invoke": invoke_agent({"query": "hello"}),
    "datasource/validate_credentials": {"provider": "drive_echo", "credentials": GOOD},
    "datasource/get_website_crawl": datasource(
        "website_echo", "crawl", datasource_parameters={"url": "http://127.0.0.1/"}
    ),
    "datasource/get_online_document_pages": datasource(
        "document_echo", "pages", datasource_parameters={"workspace": "ws-1"}
    ),
    "datasource/get_online_document_page_content": datasource("document_echo", "pages", page=PAGE),
    "datasource/online_drive_browse_files": datasource(
        "drive_echo", "files", request={"prefix": "root/", "max_keys": 20}
    ),
    "datasource/online_drive_download_file": datasource(
        "drive_echo", "files", request={"id": "root/a.txt"}
    ),
    "trigger/validate_credentials": trigger(),
    "trigger/invoke_event": trigger(
        event="ping",
        subscription=SUBSCRIPTION,
        raw_http_request=WEBHOOK,
        parameters={"greeting": "hi"},
        payload={"delivery": 7},
    ),
    "trigger/dispatch_event": trigger(subscription=SUBSCRIPTION, raw_http_request=WEBHOOK),
    "trigger/subscribe": trigger(endpoint="http://127.0.0.1/hook", parameters={"topic": "news"}),
    "trigger/unsubscribe": trigger(subscription=SUBSCRIPTION),
    "trigger/refresh": trigger(subscription=SUBSCRIPTION),
}


@pytest.mark.parametrize("route", HTTP_CASES)
def test_every_family_route_answers_dify_with_the_plugins_items(
    daemon: httpx.Client, route: str
) -> None:
    response = dispatch(daemon, route, HTTP_CASES[route])

    assert response.status_code == 200
    assert response.headers.get_list("x-emulator-warning") == []
    assert list(items(response.content)), f"no item for {route}: {response.text!r}"


def test_every_family_route_of_the_daemon_has_a_case_here() -> None:
    families = {route.path for route in ROUTES if route.access_type != "model"}

    assert families - set(HTTP_CASES) == {"tool/get_runtime_parameters"}


def test_the_daemon_joins_agent_echos_chunks_into_one_blob(daemon: httpx.Client) -> None:
    response = dispatch(daemon, "agent_strategy/invoke", invoke_agent({"blob_size": 20000}))

    received = list(items(response.content))

    assert [item["type"] for item in received] == ["text", "text", "log", "blob"]
    blob = received[-1]
    assert base64.b64decode(blob["message"]["blob"]) == blob_of(20000)
    assert blob["meta"] == {"mime_type": "application/octet-stream", "filename": "echo.bin"}


def test_tool_blob_chunks_reach_dify_unjoined(daemon: httpx.Client) -> None:
    response = dispatch(daemon, "tool/invoke", invoke_tool("blob", {"size": 20000}))

    received = list(items(response.content))

    assert [item["type"] for item in received] == ["blob_chunk"] * 4
    parts = [base64.b64decode(item["message"]["blob"]) for item in received]
    assert b"".join(parts) == blob_of(20000)
