"""The 20 dispatch routes outside the model family: the daemon's rows, its 400s, the line a
plugin gets, the items it re-encodes, and the example plugins answering Dify's payloads."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from dify_client import collect, envelopes
from emulator.config import Settings
from emulator.contract.gojson import RawMessage, parse_value
from emulator.contract.gotypes import struct_name
from emulator.contract.routes import FAMILY_ROUTES, MODEL_ROUTES, ROUTES, ROUTES_BY_PATH
from emulator.contract.wrapper import bind
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app
from emulator.sessions import Item, SessionReader, request_line
from helpers import (
    FIXTURE_PLUGINS,
    KEY,
    PAYLOADS,
    TENANT,
    assert_missing_member_400,
    dispatch_headers,
    dispatch_url,
    payload,
)

WITH_APP_ID = ("tool/invoke", "tool/get_runtime_parameters", "agent_strategy/invoke")
PLUGIN_OF_FAMILY = {
    "tool": "emulator/tool_echo",
    "oauth": "emulator/tool_echo",
    "dynamic_select": "emulator/tool_echo",
    "agent_strategy": "emulator/agent_echo",
    "datasource": "emulator/datasource_echo",
    "trigger": "emulator/trigger_echo",
}

# Transcribed from definitions.go, access_types/access.go and http_server.go.
ROWS: dict[str, tuple[str, str, str, str]] = {
    "tool/invoke": ("tool", "invoke_tool", "RequestInvokeTool", "ToolResponseChunk"),
    "tool/validate_credentials": (
        "tool",
        "validate_tool_credentials",
        "RequestValidateToolCredentials",
        "ValidateCredentialsResult",
    ),
    "tool/get_runtime_parameters": (
        "tool",
        "get_tool_runtime_parameters",
        "RequestGetToolRuntimeParameters",
        "GetToolRuntimeParametersResponse",
    ),
    "agent_strategy/invoke": (
        "agent_strategy",
        "invoke_agent_strategy",
        "RequestInvokeAgentStrategy",
        "AgentStrategyResponseChunk",
    ),
    "oauth/get_authorization_url": (
        "oauth",
        "get_authorization_url",
        "RequestOAuthGetAuthorizationURL",
        "OAuthGetAuthorizationURLResult",
    ),
    "oauth/get_credentials": (
        "oauth",
        "get_credentials",
        "RequestOAuthGetCredentials",
        "OAuthGetCredentialsResult",
    ),
    "oauth/refresh_credentials": (
        "oauth",
        "refresh_credentials",
        "RequestOAuthRefreshCredentials",
        "OAuthRefreshCredentialsResult",
    ),
    "dynamic_select/fetch_parameter_options": (
        "dynamic_parameter",
        "fetch_parameter_options",
        "RequestDynamicParameterSelect",
        "DynamicSelectResult",
    ),
    "datasource/validate_credentials": (
        "datasource",
        "validate_datasource_credentials",
        "RequestValidateDatasourceCredentials",
        "DataSourceValidateCredentialsResponse",
    ),
    "datasource/get_website_crawl": (
        "datasource",
        "invoke_website_datasource_get_crawl",
        "RequestDatasourceGetWebsiteCrawl",
        "WebsiteCrawlChunk",
    ),
    "datasource/get_online_document_pages": (
        "datasource",
        "invoke_online_document_datasource_get_pages",
        "RequestDatasourceGetOnlineDocumentPages",
        "DatasourceGetPagesResponse",
    ),
    "datasource/get_online_document_page_content": (
        "datasource",
        "invoke_online_document_datasource_get_page_content",
        "RequestInvokeOnlineDocumentDatasourceGetContent",
        "DataSourceResponseChunk",
    ),
    "datasource/online_drive_browse_files": (
        "datasource",
        "invoke_online_drive_browse_files",
        "DatasourceOnlineDriveBrowseFilesRequest",
        "GetOnlineDriveBrowseFilesResponse",
    ),
    "datasource/online_drive_download_file": (
        "datasource",
        "invoke_online_drive_download_file",
        "DatasourceOnlineDriveDownloadFileRequest",
        "DataSourceResponseChunk",
    ),
    "trigger/invoke_event": (
        "trigger",
        "invoke_trigger_event",
        "TriggerInvokeEventRequest",
        "TriggerInvokeEventResponse",
    ),
    "trigger/validate_credentials": (
        "trigger",
        "validate_trigger_credentials",
        "TriggerValidateProviderCredentialsRequest",
        "TriggerValidateProviderCredentialsResponse",
    ),
    "trigger/dispatch_event": (
        "trigger",
        "dispatch_trigger_event",
        "TriggerDispatchEventRequest",
        "TriggerDispatchEventResponse",
    ),
    "trigger/subscribe": (
        "trigger",
        "subscribe_trigger",
        "TriggerSubscribeRequest",
        "TriggerSubscribeResponse",
    ),
    "trigger/unsubscribe": (
        "trigger",
        "unsubscribe_trigger",
        "TriggerUnsubscribeRequest",
        "TriggerUnsubscribeResponse",
    ),
    "trigger/refresh": (
        "trigger",
        "refresh_trigger",
        "TriggerRefreshRequest",
        "TriggerRefreshResponse",
    ),
}
PATHS = list(ROWS)

# The member each route loses, and the validator's key for it (from the daemon's Go structs).
MISSING: dict[str, tuple[str, str]] = {
    "tool/invoke": ("tool", "RequestInvokeTool].Data.InvokeToolSchema.Tool"),
    "tool/validate_credentials": ("provider", "RequestValidateToolCredentials].Data.Provider"),
    "tool/get_runtime_parameters": ("tool", "RequestGetToolRuntimeParameters].Data.Tool"),
    "agent_strategy/invoke": (
        "agent_strategy",
        "RequestInvokeAgentStrategy].Data.InvokeAgentStrategySchema.AgentStrategy",
    ),
    "oauth/get_authorization_url": (
        "redirect_uri",
        "RequestOAuthGetAuthorizationURL].Data.RedirectURI",
    ),
    "oauth/get_credentials": (
        "raw_http_request",
        "RequestOAuthGetCredentials].Data.RawHttpRequest",
    ),
    "oauth/refresh_credentials": (
        "credentials",
        "RequestOAuthRefreshCredentials].Data.Credentials",
    ),
    "dynamic_select/fetch_parameter_options": (
        "credentials",
        "RequestDynamicParameterSelect].Data.Credentials",
    ),
    "datasource/validate_credentials": (
        "provider",
        "RequestValidateDatasourceCredentials].Data.Provider",
    ),
    "datasource/get_website_crawl": (
        "datasource",
        "RequestDatasourceGetWebsiteCrawl].Data.BaseRequestInvokeDatasource.Datasource",
    ),
    "datasource/get_online_document_pages": (
        "datasource_parameters",
        "RequestDatasourceGetOnlineDocumentPages].Data.DatasourceParameters",
    ),
    "datasource/get_online_document_page_content": (
        "page",
        "RequestInvokeOnlineDocumentDatasourceGetContent].Data.Page",
    ),
    # `required` on a struct is skipped: the struct's own required member is what fails.
    "datasource/online_drive_browse_files": (
        "request",
        "DatasourceOnlineDriveBrowseFilesRequest].Data.Request.MaxKeys",
    ),
    "datasource/online_drive_download_file": (
        "request",
        "DatasourceOnlineDriveDownloadFileRequest].Data.Request.ID",
    ),
    "trigger/invoke_event": ("subscription", "TriggerInvokeEventRequest].Data.Subscription"),
    "trigger/validate_credentials": (
        "provider",
        "TriggerValidateProviderCredentialsRequest].Data.Provider",
    ),
    "trigger/dispatch_event": (
        "raw_http_request",
        "TriggerDispatchEventRequest].Data.RawHTTPRequest",
    ),
    "trigger/subscribe": ("endpoint", "TriggerSubscribeRequest].Data.Endpoint"),
    "trigger/unsubscribe": ("subscription", "TriggerUnsubscribeRequest].Data.Subscription"),
    "trigger/refresh": ("provider", "TriggerRefreshRequest].Data.Provider"),
}


@pytest.fixture(scope="module")
def family_client() -> Iterator[httpx.Client]:
    plugins = PluginSet.load(
        [
            FIXTURE_PLUGINS / name
            for name in ("tool_echo", "agent_echo", "datasource_echo", "trigger_echo")
        ]
    )
    app = create_app(Settings(key=KEY, max_execution_timeout=30), plugins)
    with TestClient(app, base_url="http://daemon") as client:
        yield client


def post(client: httpx.Client, route: str, body: Any) -> httpx.Response:
    plugin = PLUGIN_OF_FAMILY[route.split("/")[0]]
    return client.post(
        dispatch_url(route), content=json.dumps(body), headers=dispatch_headers(plugin)
    )


# The rows ---------------------------------------------------------------------------------


def test_the_table_serves_the_daemons_36_routes_model_routes_first() -> None:
    assert len(MODEL_ROUTES) == 16 and len(ROUTES) == 36
    assert ROUTES == MODEL_ROUTES + FAMILY_ROUTES
    assert [route.path for route in FAMILY_ROUTES] == PATHS
    assert sorted(MISSING) == sorted(PATHS)


@pytest.mark.parametrize("path", PATHS)
def test_each_row_is_the_daemons(path: str) -> None:
    route = ROUTES_BY_PATH[path]

    row = (
        route.access_type,
        route.action,
        route.data_model.__name__,
        struct_name(route.response_model),
    )

    assert row == ROWS[path]
    assert route.streamed
    assert route.reassembles_blobs is (path == "agent_strategy/invoke")


def test_every_route_has_its_dify_payloads() -> None:
    names = {file.name for file in PAYLOADS.glob("*.json")}
    for path in PATHS:
        stem = path.replace("/", "__")
        assert f"{stem}.json" in names
        assert (f"{stem}.with_app_id.json" in names) is (path in WITH_APP_ID)


# (a) a missing required member -------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_a_missing_required_member_gets_the_daemons_400(
    family_client: httpx.Client, path: str
) -> None:
    member, key = MISSING[path]
    body = payload(path)
    del body["data"][member]

    response = post(family_client, path, body)

    assert_missing_member_400(response, key)


def test_an_empty_map_is_not_missing_but_null_is(family_client: httpx.Client) -> None:
    path = "oauth/refresh_credentials"
    empty = payload(path)
    empty["data"]["credentials"] = {}
    null = payload(path)
    null["data"]["credentials"] = None

    assert post(family_client, path, empty).status_code == 200
    assert post(family_client, path, null).status_code == 400


def test_max_keys_zero_is_missing_to_the_validator(family_client: httpx.Client) -> None:
    path = "datasource/online_drive_browse_files"
    body = payload(path)
    body["data"]["request"]["max_keys"] = 0

    message = json.loads(post(family_client, path, body).json()["message"])["message"]

    assert message.endswith(
        "Data.Request.MaxKeys' Error:Field validation for 'MaxKeys' failed on the 'required' tag"
    )


# (b) the line the plugin gets --------------------------------------------------------------


def plugin_line(path: str, body: dict[str, Any]) -> dict[str, Any]:
    route = ROUTES_BY_PATH[path]
    bound = bind(route.data_model, json.dumps(body).encode(), TENANT, "application/json")
    assert bound.validation_errors == [] and bound.warnings == []
    line = request_line(route, bound.values, "s-1")
    return json.loads(line)


def both_payloads(path: str) -> list[dict[str, Any]]:
    return [payload(path), *([payload(path, with_app_id=True)] if path in WITH_APP_ID else [])]


@pytest.mark.parametrize("path", PATHS)
def test_the_plugin_gets_dify_data_sorted_with_the_ids_in_the_envelope(path: str) -> None:
    for body in both_payloads(path):
        line = plugin_line(path, body)

        assert list(line) == [
            "session_id",
            "conversation_id",
            "message_id",
            "app_id",
            "endpoint_id",
            "context",
            "event",
            "data",
        ]
        for name in ("conversation_id", "message_id", "app_id", "context"):
            assert line[name] == body.get(name)
        data = line["data"]
        assert list(data) == sorted(data)
        access_type, action, _, _ = ROWS[path]
        assert (data.pop("type"), data.pop("action")) == (access_type, action)
        assert data.pop("user_id") == body.get("user_id", "")
        assert data == body["data"]


def test_an_empty_credential_type_is_dropped_and_a_nested_struct_goes_out_sorted() -> None:
    route = ROUTES_BY_PATH["datasource/online_drive_browse_files"]
    body = payload(route.path)
    bound = bind(route.data_model, json.dumps(body).encode(), TENANT, "application/json").values

    line = request_line(route, bound, "s-1")

    assert line == (
        '{"session_id":"s-1","conversation_id":null,"message_id":null,"app_id":null,'
        '"endpoint_id":null,"context":null,"event":"request","data":{'
        '"action":"invoke_online_drive_browse_files","credentials":{"api_key":"good"},'
        '"datasource":"files","provider":"drive_echo","request":{"bucket":null,"max_keys":20,'
        '"next_page_parameters":null,"prefix":""},"type":"datasource","user_id":"user-7b21"}}'
    )


def test_members_dify_leaves_out_reach_the_plugin_as_go_zero_values() -> None:
    body = {"data": {"provider": "p", "datasource": "d", "request": {"max_keys": 5}}}

    data = plugin_line("datasource/online_drive_browse_files", body)["data"]

    assert data["credentials"] is None and "credential_type" not in data
    assert data["request"] == {
        "bucket": None,
        "max_keys": 5,
        "next_page_parameters": None,
        "prefix": "",
    }
    assert data["user_id"] == ""


# (c) items re-encoded as the daemon encodes them --------------------------------------------


def read(path: str, chunk: Any) -> Item:
    raw = RawMessage(parse_value(json.dumps({"type": "stream", "data": chunk})))
    item = SessionReader(ROUTES_BY_PATH[path]).read(raw)
    assert isinstance(item, Item)
    return item


DATASOURCE_BLOB_CHUNK = {
    "type": "blob_chunk",
    "message": {"id": "f", "sequence": 0, "total_length": 2, "blob": "aGk=", "end": False},
    "meta": None,
}
ENCODED: list[tuple[str, Any, str]] = [
    (
        "tool/invoke",
        {"type": "text", "message": {"text": "<hi>"}, "meta": None},
        '{"type":"text","message":{"text":"\\u003chi\\u003e"},"meta":null}',
    ),
    ("tool/validate_credentials", {"result": True, "extra": 1}, '{"result":true}'),
    (
        "tool/get_runtime_parameters",
        {
            "parameters": [
                {
                    "name": "channel",
                    "label": {"en_US": "Channel"},
                    "human_description": {"en_US": "Where to post"},
                    "type": "dynamic-select",
                    "form": "form",
                    "required": True,
                }
            ]
        },
        '{"parameters":[{"name":"channel","label":{"en_US":"Channel"},"human_description":'
        '{"en_US":"Where to post"},"type":"dynamic-select","scope":null,"form":"form",'
        '"llm_description":"","required":true,"auto_generate":null,"template":null,'
        '"default":null,"min":null,"max":null,"multiple":false,"precision":null,'
        '"options":null}]}',
    ),
    (
        "agent_strategy/invoke",
        {"type": "log", "message": {"id": "l1", "data": {}}, "meta": {"b": 2, "a": 1}},
        '{"type":"log","message":{"data":{},"id":"l1"},"meta":{"a":1,"b":2}}',
    ),
    (
        "oauth/get_authorization_url",
        {"authorization_url": "https://a.invalid/?x=1&y=2"},
        '{"authorization_url":"https://a.invalid/?x=1\\u0026y=2"}',
    ),
    (
        "oauth/get_credentials",
        {"credentials": {"access_token": "t"}, "expires_at": 3600},
        '{"credentials":{"access_token":"t"},"expires_at":3600}',
    ),
    (
        "oauth/get_credentials",
        {"metadata": {"avatar": "a.png"}, "credentials": None, "expires_at": -1},
        '{"metadata":{"avatar":"a.png"},"credentials":null,"expires_at":-1}',
    ),
    (
        "oauth/refresh_credentials",
        {"credentials": {"access_token": "t2"}},
        '{"credentials":{"access_token":"t2"},"expires_at":0}',
    ),
    (
        "dynamic_select/fetch_parameter_options",
        {"options": [{"value": "general", "label": {"en_US": "General", "zh_Hans": "通用"}}]},
        '{"options":[{"value":"general","label":{"en_US":"General","zh_Hans":"通用"},"icon":""}]}',
    ),
    ("datasource/validate_credentials", {"result": False}, '{"result":false}'),
    (
        "datasource/get_website_crawl",
        {"result": {"total": 1, "status": "completed"}},
        '{"result":{"status":"completed","total":1}}',
    ),
    (
        "datasource/get_online_document_pages",
        {"result": [{"workspace_id": "w"}, None]},
        '{"result":[{"workspace_id":"w"},null]}',
    ),
    (
        "datasource/get_online_document_page_content",
        {"type": "json", "message": {"json_object": {"k": 1.50}}, "meta": None},
        '{"type":"json","message":{"json_object":{"k":1.5}},"meta":null}',
    ),
    (
        # The buckets are never validated (no dive): is_truncated false passes its `required`.
        "datasource/online_drive_browse_files",
        {"result": [{"files": [{"id": "a", "name": "a", "size": 1, "type": "file"}]}]},
        '{"result":[{"bucket":null,"files":[{"id":"a","name":"a","size":1,"type":"file"}],'
        '"is_truncated":false,"next_page_parameters":null}]}',
    ),
    (
        "datasource/online_drive_download_file",
        DATASOURCE_BLOB_CHUNK,
        '{"type":"blob_chunk","message":{"blob":"aGk=","end":false,"id":"f","sequence":0,'
        '"total_length":2},"meta":null}',
    ),
    (
        "trigger/invoke_event",
        {"variables": {"x": 1}},
        '{"variables":{"x":1},"cancelled":false}',
    ),
    ("trigger/validate_credentials", {"result": True}, '{"result":true}'),
    (
        "trigger/dispatch_event",
        {"events": ["ping"], "response": "48"},
        '{"user_id":"","events":["ping"],"response":"48"}',
    ),
    (
        "trigger/dispatch_event",
        {"user_id": "u", "events": None, "payload": {"b": 1, "a": 2}, "response": ""},
        '{"user_id":"u","events":null,"payload":{"a":2,"b":1},"response":""}',
    ),
    ("trigger/subscribe", {"subscription": {"b": 1, "a": 2}}, '{"subscription":{"a":2,"b":1}}'),
    ("trigger/unsubscribe", {"subscription": {}}, '{"subscription":{}}'),
    ("trigger/refresh", {}, '{"subscription":null}'),
]


def test_every_route_has_an_encoding_case() -> None:
    assert {path for path, _, _ in ENCODED} == set(PATHS)


@pytest.mark.parametrize(("path", "chunk", "encoded"), ENCODED, ids=lambda v: str(v)[:40])
def test_a_plugin_chunk_is_re_encoded_as_the_daemon_encodes_it(
    path: str, chunk: Any, encoded: str
) -> None:
    item = read(path, chunk)

    assert not item.is_error
    assert item.envelope == '{"code":0,"message":"success","data":' + encoded + "}"


REFUSED: list[tuple[str, Any, str]] = [
    (
        "dynamic_select/fetch_parameter_options",
        {"options": [{"label": {"en_US": "x"}}]},
        "Key: 'DynamicSelectResult.Options[0].Value' Error:Field validation for 'Value' "
        "failed on the 'required' tag",
    ),
    (
        "dynamic_select/fetch_parameter_options",
        {"options": [{"value": "x", "label": {}}]},
        "Key: 'DynamicSelectResult.Options[0].Label.EnUS' Error:Field validation for 'EnUS' "
        "failed on the 'required' tag",
    ),
    (
        "datasource/online_drive_browse_files",
        {},
        "Key: 'GetOnlineDriveBrowseFilesResponse.Result' Error:Field validation for 'Result' "
        "failed on the 'required' tag",
    ),
    (
        "datasource/online_drive_download_file",
        {"type": "video", "message": {}},
        "Key: 'DataSourceResponseChunk.Type' Error:Field validation for 'Type' failed on the "
        "'is_valid_data_source_response_chunk_type' tag",
    ),
    (
        "tool/invoke",
        {"message": {"text": "x"}},
        "Key: 'ToolResponseChunk.Type' Error:Field validation for 'Type' failed on the "
        "'required' tag",
    ),
    (
        "trigger/dispatch_event",
        {"events": "ping"},
        "json: cannot unmarshal string into Go struct field "
        "TriggerDispatchEventResponse.events of type []string",
    ),
]


@pytest.mark.parametrize(("path", "chunk", "error"), REFUSED, ids=lambda v: str(v)[:40])
def test_a_chunk_the_daemon_cannot_take_ends_with_unmarshal_error(
    path: str, chunk: Any, error: str
) -> None:
    item = read(path, chunk)

    envelope = json.loads(item.envelope)
    inner = json.loads(json.loads(envelope["message"])["message"])
    assert item.is_error
    assert inner == {"error_type": "unmarshal_error", "message": f"unmarshal json failed: {error}"}


# (e) the example plugins, end to end --------------------------------------------------------


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def keys_of(*names: str) -> Callable[[list[Any]], None]:
    def check(items: list[Any]) -> None:
        assert items and all(list(item) == list(names) for item in items), items

    return check


def check_tool_invoke(items: list[Any]) -> None:
    keys_of("type", "message", "meta")(items)
    assert [item["type"] for item in items] == ["json", "text"]
    echoed = items[0]["message"]["json_object"]
    assert echoed["tool_parameters"] == {"channel": "general", "text": "hello tool"}
    assert echoed["credential_type"] == "api-key"


def check_agent(items: list[Any]) -> None:
    keys_of("type", "message", "meta")(items)
    assert [item["type"] for item in items] == ["text", "text", "log", "blob"]
    session = json.loads(items[0]["message"]["text"])
    assert session["context"] == payload("agent_strategy/invoke")["context"]
    blob = base64.b64decode(items[-1]["message"]["blob"])
    assert len(blob) == 20000  # more than two 8 KiB chunks, joined by the daemon


def check_options(items: list[Any]) -> None:
    options = only(items)["options"]
    assert [option["value"] for option in options] == ["general", "random", "user-user-7b21"]
    assert all(list(option) == ["value", "label", "icon"] for option in options)


def check_browse(items: list[Any]) -> None:
    (bucket,) = only(items)["result"]
    assert list(bucket) == ["bucket", "files", "is_truncated", "next_page_parameters"]
    assert all(list(file) == ["id", "name", "size", "type"] for file in bucket["files"])


def check_dispatch(items: list[Any]) -> None:
    keys_of("user_id", "events", "payload", "response")(items)
    result = only(items)
    assert (result["user_id"], result["events"]) == ("user-7b21", ["ping"])
    assert bytes.fromhex(result["response"]).startswith(b"HTTP/1.1 200")


def check_credentials(items: list[Any]) -> None:
    keys_of("credentials", "expires_at")(items)
    assert only(items)["expires_at"] == 4102444800


def results(expected: Any) -> Callable[[list[Any]], None]:
    return lambda items: _assert_equal(items, expected)


def _assert_equal(actual: Any, expected: Any) -> None:
    assert actual == expected


EXPECTED: dict[str, Callable[[list[Any]], None]] = {
    "tool/invoke": check_tool_invoke,
    "tool/validate_credentials": results([{"result": True}]),
    "tool/get_runtime_parameters": results([]),
    "agent_strategy/invoke": check_agent,
    "oauth/get_authorization_url": keys_of("authorization_url"),
    "oauth/get_credentials": check_credentials,
    "oauth/refresh_credentials": check_credentials,
    "dynamic_select/fetch_parameter_options": check_options,
    "datasource/validate_credentials": results([{"result": True}]),
    "datasource/get_website_crawl": keys_of("result"),
    "datasource/get_online_document_pages": keys_of("result"),
    "datasource/get_online_document_page_content": keys_of("type", "message", "meta"),
    "datasource/online_drive_browse_files": check_browse,
    "datasource/online_drive_download_file": keys_of("type", "message", "meta"),
    "trigger/invoke_event": keys_of("variables", "cancelled"),
    "trigger/validate_credentials": results([{"result": True}]),
    "trigger/dispatch_event": check_dispatch,
    "trigger/subscribe": keys_of("subscription"),
    "trigger/unsubscribe": keys_of("subscription"),
    "trigger/refresh": keys_of("subscription"),
}


@pytest.mark.parametrize("path", PATHS)
def test_a_dify_payload_gets_the_example_plugins_answer(
    family_client: httpx.Client, path: str
) -> None:
    for body in both_payloads(path):
        response = post(family_client, path, body)

        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert all(list(e) == ["code", "message", "data"] for e in envelopes(response.text))
        items, error = collect(response.text)
        assert error is None, error
        EXPECTED[path](items)


def test_get_runtime_parameters_streams_nothing_as_the_daemon_does(
    family_client: httpx.Client,
) -> None:
    response = post(family_client, "tool/get_runtime_parameters", payload(WITH_APP_ID[1]))

    assert (response.status_code, response.text) == (200, "")
    assert response.headers["content-type"] == "text/event-stream"


@pytest.mark.parametrize("app_id", [None, "app-9f3c"])
def test_tool_and_agent_plugins_see_the_app_id_dify_sent(
    family_client: httpx.Client, app_id: str | None
) -> None:
    with_or_without = app_id is not None
    tool_items, _ = collect(
        post(family_client, "tool/invoke", payload("tool/invoke", with_or_without)).text
    )
    agent_items, _ = collect(
        post(
            family_client,
            "agent_strategy/invoke",
            payload("agent_strategy/invoke", with_or_without),
        ).text
    )

    assert tool_items[0]["message"]["json_object"]["session"]["app_id"] == app_id
    assert json.loads(agent_items[0]["message"]["text"])["app_id"] == app_id


def test_tool_blob_chunks_reach_dify_as_chunks(family_client: httpx.Client) -> None:
    body = payload("tool/invoke")
    body["data"]["tool"] = "blob"
    body["data"]["tool_parameters"] = {"size": 20000}

    items, error = collect(post(family_client, "tool/invoke", body).text)

    assert error is None
    assert [item["type"] for item in items] == ["blob_chunk"] * 4
    assert [item["message"]["end"] for item in items] == [False, False, False, True]
    joined = b"".join(base64.b64decode(item["message"]["blob"]) for item in items)
    assert joined == bytes(index % 251 for index in range(20000))
