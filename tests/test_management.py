"""The management routes Dify calls, answered from the loaded plugins' declarations."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.testclient import TestClient

from dify_client import (
    DifyBasicResponse,
    DifyPluginListResponse,
    DifyPluginModelProviderEntity,
    DifyPluginToolProviderEntity,
    tool_providers_transformer,
)
from emulator.config import EXAMPLE_PLUGIN, RuntimeChoice, Settings
from emulator.contract.declarations import EventParameter
from emulator.contract.gojson import encode_any
from emulator.runtime import PluginIdentity
from emulator.runtime.declaration import DeclarationError, decode_struct, read_package
from emulator.runtime.registry import PluginSet
from emulator.server import management
from emulator.server.app import create_app
from helpers import FIXTURE_PLUGINS, KEY, TENANT

OTHER_TENANT = "0b7c4a3e-1f2d-4e5f-8a9b-0c1d2e3f4a5b"
KINDS = ("tool_echo", "agent_echo", "datasource_echo", "trigger_echo")
LOADED = [EXAMPLE_PLUGIN, *(FIXTURE_PLUGINS / name for name in KINDS)]
UNAUTHORIZED = (
    '{"code":-401,"message":"{\\"message\\":\\"unauthorized\\",'
    '\\"error_type\\":\\"PluginDaemonUnauthorizedError\\",\\"args\\":null}","data":null}'
)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    missing = [path.name for path in LOADED if not path.is_dir()]
    if missing:
        pytest.skip(f"example plugins not written yet: {', '.join(missing)}")
    app = create_app(Settings(key=KEY), PluginSet.load(LOADED))
    with TestClient(app, base_url="http://daemon") as test_client:
        yield test_client


def get(client: httpx.Client, path: str, tenant: str = TENANT, **kwargs: Any) -> httpx.Response:
    return client.get(f"/plugin/{tenant}{path}", headers={"X-Api-Key": KEY}, **kwargs)


def post(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    return client.post(f"/plugin/{TENANT}{path}", headers={"X-Api-Key": KEY}, json=body)


def data(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert (envelope["code"], envelope["message"]) == (0, "success"), envelope
    return envelope["data"]


def failure(response: httpx.Response) -> tuple[int, int, str, str]:
    """HTTP status, envelope code, error type and message of an error answer."""
    envelope = response.json()
    inner = json.loads(envelope["message"])
    return response.status_code, envelope["code"], inner["error_type"], inner["message"]


# What Dify parses --------------------------------------------------------------------------


def test_dify_parses_the_model_provider_list(client: httpx.Client) -> None:
    answer = get(client, "/management/models", params={"page": 1, "page_size": 256})

    parsed = DifyBasicResponse[list[DifyPluginModelProviderEntity]].model_validate(answer.json())

    assert parsed.data is not None
    [echo] = parsed.data
    assert (echo.plugin_id, echo.provider, echo.tenant_id) == ("emulator/echo", "echo", TENANT)
    models = [(model.model, model.model_type.value) for model in echo.declaration.models]
    # the daemon walks the plugin's files in lexical order and keeps every model file it matches
    assert models == [
        ("echo-1", "llm"),
        ("echo-moderation", "moderation"),
        ("echo-rerank", "rerank"),
        ("echo-stt", "speech2text"),
        ("echo-embed", "text-embedding"),
        ("echo-tts", "tts"),
    ]


def test_a_parameter_template_fills_the_rule_but_not_its_label(client: httpx.Client) -> None:
    [echo] = data(get(client, "/management/models", params={"page": 1, "page_size": 256}))
    llm = echo["declaration"]["models"][0]

    temperature = llm["parameter_rules"][0]

    assert temperature == {
        "name": "temperature",
        "use_template": "temperature",
        "label": {"en_US": "temperature"},
        "type": "float",
        "help": None,
        "required": False,
        "default": 0,
        "min": 0,
        "max": 1,
        "precision": 2,
        "options": [],
    }


def test_declarations_keep_go_nils_and_defaults(client: httpx.Client) -> None:
    [echo] = data(get(client, "/management/models", params={"page": 1, "page_size": 256}))
    provider = echo["declaration"]

    assert provider["icon_large"] is None
    assert provider["position"] == {}  # models listed by type: the daemon keeps an empty position
    assert provider["description"] == {
        "en_US": "Offline models that echo their input and the session they ran in."
    }
    form = provider["provider_credential_schema"]["credential_form_schemas"][0]
    assert (form["options"], form["show_on"], form["default"]) == ([], [], None)
    assert provider["models"][0]["pricing"] == {
        "input": "0.001",
        "output": "0.002",
        "unit": "0.001",
        "currency": "USD",
    }


def test_dify_parses_the_tool_provider_list(client: httpx.Client) -> None:
    answer = get(client, "/management/tools", params={"page": 1, "page_size": 256})

    parsed = DifyBasicResponse[list[DifyPluginToolProviderEntity]].model_validate(
        tool_providers_transformer(answer.json())
    )

    assert parsed.data is not None
    [tool_echo] = parsed.data
    assert (tool_echo.plugin_id, tool_echo.provider) == ("emulator/tool_echo", "tool_echo")
    tools = {tool.identity.name for tool in tool_echo.declaration.tools}
    assert {"blob", "echo_ids", "storage_get"} <= tools


def test_dify_parses_the_plugin_list(client: httpx.Client) -> None:
    answer = get(client, "/management/list", params={"page": 1, "page_size": 256})

    parsed = DifyBasicResponse[DifyPluginListResponse].model_validate(answer.json())

    assert parsed.data is not None
    assert parsed.data.total == len(LOADED)
    names = [plugin.plugin_id for plugin in parsed.data.list]
    # ORDER BY created_at DESC: the last plugin loaded is the newest installation
    assert names == ["emulator/" + path.name for path in reversed(LOADED)]
    assert {plugin.runtime_type for plugin in parsed.data.list} == {"local"}


@pytest.mark.parametrize(
    ("route", "plugin_id", "provider"),
    [
        ("agent_strategies", "emulator/agent_echo", "agent_echo"),
        ("datasources", "emulator/datasource_echo", None),
        ("triggers", "emulator/trigger_echo", "trigger_echo"),
    ],
)
def test_other_provider_lists_hold_their_plugin(
    client: httpx.Client, route: str, plugin_id: str, provider: str | None
) -> None:
    rows = data(get(client, f"/management/{route}", params={"page": 1, "page_size": 256}))

    [row] = rows
    assert row["plugin_id"] == plugin_id
    assert list(row)[:3] == ["id", "created_at", "updated_at"]
    if provider is not None:
        assert row["provider"] == provider
    if route == "agent_strategies":
        assert row["meta"]["runner"]["language"] == "python"


def test_a_datasource_plugin_keeps_only_its_last_listed_provider(client: httpx.Client) -> None:
    """PluginDecoderHelper.Manifest assigns each listed datasource file in turn."""
    plugin = FIXTURE_PLUGINS / "datasource_echo"
    listed = yaml.safe_load((plugin / "manifest.yaml").read_text())["plugins"]["datasources"]
    names = [yaml.safe_load((plugin / file).read_text())["identity"]["name"] for file in listed]

    [row] = data(get(client, "/management/datasources", params={"page": 1, "page_size": 9}))

    assert len(names) > 1
    assert row["provider"] == row["declaration"]["identity"]["name"] == names[-1]


# One provider, and what is not there --------------------------------------------------------


def test_one_tool_provider(client: httpx.Client) -> None:
    params = {"plugin_id": "emulator/tool_echo", "provider": "tool_echo"}

    row = data(get(client, "/management/tool", params=params))

    assert (row["plugin_id"], row["provider"]) == ("emulator/tool_echo", "tool_echo")
    assert row["declaration"]["identity"]["name"] == "tool_echo"


@pytest.mark.parametrize("route", ["tool", "agent_strategy", "trigger"])
@pytest.mark.parametrize(
    "params",
    [
        {"plugin_id": "emulator/nothing", "provider": "nothing"},
        {"plugin_id": "emulator/tool_echo", "provider": "not_its_provider"},
    ],
)
def test_a_missing_provider_is_plugin_not_found_inside_http_200(
    client: httpx.Client, route: str, params: dict[str, str]
) -> None:
    answer = get(client, f"/management/{route}", params=params)

    assert failure(answer) == (200, -404, "PluginNotFoundError", "plugin not found")
    assert answer.json()["data"] is None


def test_a_missing_datasource_is_the_databases_500_but_a_wrong_provider_404(
    client: httpx.Client,
) -> None:
    nothing = {"plugin_id": "emulator/nothing", "provider": "x"}
    wrong = {"plugin_id": "emulator/datasource_echo", "provider": "x"}

    assert failure(get(client, "/management/datasource", params=nothing)) == (
        200,
        -500,
        "PluginDaemonInternalServerError",
        "record not found",
    )
    assert failure(get(client, "/management/datasource", params=wrong))[:3] == (
        200,
        -404,
        "PluginNotFoundError",
    )


def test_tool_existence_in_the_order_asked(client: httpx.Client) -> None:
    asked = [
        {"plugin_id": "emulator/tool_echo", "provider_name": "nope"},
        {"plugin_id": "emulator/tool_echo", "provider_name": "tool_echo"},
        {"plugin_id": "emulator/echo", "provider_name": "echo"},
    ]

    assert data(post(client, "/management/tools/check_existence", {"provider_ids": asked})) == [
        False,
        True,
        False,
    ]


def test_installations_by_plugin_id_and_missing_ones(client: httpx.Client) -> None:
    rows = data(post(client, "/management/installation/fetch/batch", {"plugin_ids": ["x"]}))
    [echo] = data(
        post(client, "/management/installation/fetch/batch", {"plugin_ids": ["emulator/echo"]})
    )
    stale = "emulator/echo:0.0.9@" + "0" * 64
    unknown = "someone/else:1.0.0@" + "0" * 64

    missing = data(
        post(
            client,
            "/management/installation/missing",
            {"plugin_unique_identifiers": [echo["plugin_unique_identifier"], stale, unknown]},
        )
    )

    assert rows == []
    assert list(echo)[:11] == [
        "id",
        "created_at",
        "updated_at",
        "tenant_id",
        "plugin_id",
        "plugin_unique_identifier",
        "runtime_type",
        "endpoints_setups",
        "endpoints_active",
        "source",
        "meta",
    ]
    assert (echo["version"], echo["declaration"]["name"]) == ("0.1.0", "echo")
    assert missing == [
        {"plugin_unique_identifier": stale, "current_identifier": echo["plugin_unique_identifier"]},
        {"plugin_unique_identifier": unknown, "current_identifier": ""},
    ]


def test_installed_ids_and_model_bindings(client: httpx.Client) -> None:
    tools = data(get(client, "/management/installation/ids", params={"category": "tool"}))
    extensions = data(get(client, "/management/installation/ids", params={"category": "extension"}))
    bogus = get(client, "/management/installation/ids", params={"category": "bogus"})
    [binding] = data(get(client, "/management/models/bindings"))

    assert tools == {"plugin_ids": ["emulator/tool_echo"]}
    assert extensions == {"plugin_ids": []}
    assert failure(bogus) == (200, -400, "PluginDaemonBadRequestError", "invalid plugin category")
    assert binding["plugin_id"] == "emulator/echo"
    assert (binding["provider"], binding["runtime_type"], binding["verified"]) == (
        "echo",
        "local",
        False,
    )


def test_the_rest_dify_polls_answers_empty(client: httpx.Client) -> None:
    page = {"page": 1, "page_size": 10}

    assert data(get(client, "/management/install/tasks", params=page)) == []
    assert data(get(client, "/endpoint/list", params=page)) == []
    assert data(get(client, "/endpoint/list/plugin", params={**page, "plugin_id": "a/b"})) == []
    assert failure(get(client, "/management/install/tasks/nope"))[1:] == (
        -500,
        "PluginDaemonInternalServerError",
        "record not found",
    )


def test_the_debugging_key_is_one_per_tenant(client: httpx.Client) -> None:
    first = data(client.post(f"/plugin/{TENANT}/debugging/key", headers={"X-Api-Key": KEY}))
    again = data(client.post(f"/plugin/{TENANT}/debugging/key", headers={"X-Api-Key": KEY}))
    other = data(client.post(f"/plugin/{OTHER_TENANT}/debugging/key", headers={"X-Api-Key": KEY}))

    assert first == again
    assert first["key"] != other["key"]


def test_manifest_identifier_and_decode_by_unique_identifier(client: httpx.Client) -> None:
    [echo] = data(
        post(client, "/management/installation/fetch/batch", {"plugin_ids": ["emulator/echo"]})
    )
    query = {"plugin_unique_identifier": echo["plugin_unique_identifier"]}
    unknown = {"plugin_unique_identifier": "emulator/echo:9.9.9@" + "0" * 64}

    assert data(get(client, "/management/fetch/manifest", params=query)) == echo["declaration"]
    assert data(get(client, "/management/fetch/identifier", params=query)) is True
    assert data(get(client, "/management/fetch/identifier", params=unknown)) is False
    decoded = data(get(client, "/management/decode/from_identifier", params=query))
    assert list(decoded) == ["manifest", "unique_identifier", "verification"]
    assert failure(get(client, "/management/fetch/manifest", params=unknown))[1:] == (
        -400,
        "PluginDaemonBadRequestError",
        "plugin not found",
    )


# Icons ---------------------------------------------------------------------------------------


def test_icons_name_the_daemons_asset_ids_and_the_asset_route_serves_them(
    client: httpx.Client,
) -> None:
    icon = (EXAMPLE_PLUGIN / "_assets" / "icon.svg").read_bytes()
    asset_id = hashlib.sha256(icon + b"icon.svg").hexdigest() + ".svg"
    [echo] = data(get(client, "/management/models", params={"page": 1, "page_size": 1}))

    served = client.get(f"/plugin/{TENANT}/asset/{asset_id}", headers={"X-Api-Key": KEY})
    unknown = client.get(f"/plugin/{TENANT}/asset/{'0' * 64}.svg", headers={"X-Api-Key": KEY})

    assert echo["declaration"]["icon_small"] == {"en_US": asset_id}
    assert (served.status_code, served.content) == (200, icon)
    assert served.headers["content-type"] == "application/octet-stream"
    assert (unknown.status_code, unknown.content) == (200, b"")


# Pages, ids, timestamps ------------------------------------------------------------------------


def test_pages_follow_offset_and_limit(client: httpx.Client) -> None:
    def page(number: int, size: int) -> list[str]:
        answer = get(client, "/management/list", params={"page": number, "page_size": size})
        return [item["plugin_id"] for item in data(answer)["list"]]

    everything = page(1, 256)

    assert page(1, 2) + page(2, 2) + page(3, 2) == everything
    assert page(4, 2) == []
    assert data(get(client, "/management/models", params={"page": 2, "page_size": 1})) == []


def test_category_lists_say_whether_more_follow(client: httpx.Client) -> None:
    def listing(category: str, **params: Any) -> Any:
        query = {"page": 1, "page_size": 1, **params}
        return data(get(client, f"/management/{category}/list", params=query))

    assert [item["plugin_id"] for item in listing("model")["list"]] == ["emulator/echo"]
    assert listing("model")["has_more"] is False
    assert listing("tool", query="TOOL ECHO")["list"][0]["name"] == "tool_echo"
    assert listing("tool", query="no such words")["list"] == []
    assert listing("extension") == {"list": [], "has_more": False}
    assert failure(get(client, "/management/bogus/list", params={"page": 1, "page_size": 1}))[
        1:3
    ] == (-400, "PluginDaemonBadRequestError")


def test_ids_and_timestamps_hold_for_the_run_and_differ_per_tenant(client: httpx.Client) -> None:
    params = {"page": 1, "page_size": 256}
    first = data(get(client, "/management/models", params=params))[0]
    again = data(get(client, "/management/models", params=params))[0]
    other = data(get(client, "/management/models", OTHER_TENANT, params=params))[0]

    assert (first["id"], first["created_at"]) == (again["id"], again["created_at"])
    assert first["id"] != other["id"]
    assert other["tenant_id"] == OTHER_TENANT
    assert first["created_at"] == first["updated_at"]
    assert first["id"][14] == "7"  # gorm's BeforeCreate gives UUIDv7 ids


# Validation --------------------------------------------------------------------------------


def validator_lines(answer: httpx.Response) -> list[str]:
    status, code, error_type, message = failure(answer)
    assert (status, code, error_type) == (400, -400, "PluginDaemonBadRequestError")
    return message.split("\n")


def rule(key: str, tag: str, field: str | None = None) -> str:
    return f"Key: '{key}' Error:Field validation for '{field or key}' failed on the '{tag}' tag"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [rule("Page", "required"), rule("PageSize", "required")]),
        ("?page=0&page_size=10", [rule("Page", "required")]),
        ("?page=-1&page_size=10", [rule("Page", "min")]),
        ("?page=1&page_size=257", [rule("PageSize", "max")]),
        ("?page=1&page_size=-3", [rule("PageSize", "min")]),
        # gin's form binding stops at the first field it cannot parse
        ("?page=abc&page_size=10", [rule("Page", "required"), rule("PageSize", "required")]),
        ("?page=1&page_size=1.5", [rule("PageSize", "required")]),
        (
            "?page=99999999999999999999&page_size=1",
            [rule("Page", "required"), rule("PageSize", "required")],
        ),
    ],
)
def test_page_rules(client: httpx.Client, query: str, expected: list[str]) -> None:
    assert validator_lines(get(client, "/management/models" + query)) == expected


def test_named_request_types_show_in_the_validator_text(client: httpx.Client) -> None:
    by_category = get(
        client, "/management/tool/list", params={"page": 1, "page_size": 1, "language": "fr"}
    )
    ids = get(client, "/management/installation/ids")

    assert validator_lines(by_category) == [
        rule("listPluginsByCategoryRequest.Language", "oneof", "Language")
    ]
    assert validator_lines(ids) == [
        rule("listInstalledPluginIDsRequest.Category", "required", "Category")
    ]


def test_an_empty_tenant_fails_validation(client: httpx.Client) -> None:
    answer = client.get("/plugin//management/models?page=1&page_size=1", headers={"X-Api-Key": KEY})

    assert validator_lines(answer) == [rule("TenantID", "required")]


def test_json_bodies_are_validated_with_dive(client: httpx.Client) -> None:
    empty = post(client, "/management/tools/check_existence", {})
    blank_item = post(client, "/management/tools/check_existence", {"provider_ids": [{}]})
    bad_identifier = post(
        client, "/management/installation/missing", {"plugin_unique_identifiers": ["nope"]}
    )
    too_many = post(client, "/management/installation/fetch/batch", {"plugin_ids": ["a"] * 257})

    assert validator_lines(empty) == [rule("ProviderIDS", "required")]
    assert validator_lines(blank_item) == [
        rule("ProviderIDS[0].PluginID", "required", "PluginID"),
        rule("ProviderIDS[0].ProviderName", "required", "ProviderName"),
    ]
    assert validator_lines(bad_identifier) == [
        rule("PluginUniqueIdentifiers[0]", "plugin_unique_identifier")
    ]
    assert validator_lines(too_many) == [rule("PluginIDs", "max")]


def test_a_json_body_not_sent_as_json_is_not_read(client: httpx.Client) -> None:
    answer = client.post(
        f"/plugin/{TENANT}/management/installation/fetch/batch",
        headers={"X-Api-Key": KEY, "Content-Type": "text/plain"},
        content=b'{"plugin_ids": []}',
    )

    assert validator_lines(answer) == [rule("PluginIDs", "required")]


def test_an_endpoint_page_may_be_at_most_100(client: httpx.Client) -> None:
    answer = get(client, "/endpoint/list", params={"page": 1, "page_size": 101})

    assert validator_lines(answer) == [rule("PageSize", "max")]


# Auth and the routes the emulator does not implement ----------------------------------------


def route_path(route: management._Route) -> str:
    path = route.path.replace("{id}", "some-id").replace("{category}", "tool")
    return f"/plugin/{TENANT}" + path.replace("{identifier:path}", "a/b:1.0.0@" + "0" * 32)


@pytest.mark.parametrize("route", management.ROUTES, ids=lambda route: route.path)
@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": KEY + "x"}], ids=["no key", "wrong key"])
def test_every_route_refuses_a_missing_or_wrong_key(
    client: httpx.Client, route: management._Route, headers: dict[str, str]
) -> None:
    answer = client.request(route.method, route_path(route), headers=headers)

    assert (answer.status_code, answer.text) == (401, UNAUTHORIZED)
    assert answer.headers["content-type"] == "application/json; charset=utf-8"


UNIMPLEMENTED = [route for route in management.ROUTES if route.handler is None]


@pytest.mark.parametrize("route", UNIMPLEMENTED, ids=lambda route: route.path)
def test_unimplemented_routes_fail_loudly_inside_http_200(
    client: httpx.Client, route: management._Route
) -> None:
    answer = client.request(route.method, route_path(route), headers={"X-Api-Key": KEY})

    status, code, error_type, message = failure(answer)
    assert (status, code, error_type) == (200, -500, "PluginDaemonInternalServerError")
    assert f"does not implement {route.method} /plugin/{{tenant_id}}{route.path}" in message


def test_a_wrong_method_is_gins_no_route(client: httpx.Client) -> None:
    answer = client.post(f"/plugin/{TENANT}/management/models", headers={"X-Api-Key": KEY})

    assert (answer.status_code, answer.json()) == (
        404,
        {"code": "not_found", "message": "route not found"},
    )


# Reading a plugin directory as the daemon's decoder does ------------------------------------


@pytest.fixture
def plugin_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "echo"
    shutil.copytree(EXAMPLE_PLUGIN, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_wrongly_shaped_yaml_value_fails_the_whole_plugin(plugin_copy: Path) -> None:
    provider = plugin_copy / "provider" / "echo.yaml"
    provider.write_text(provider.read_text().replace("provider: echo", "provider: [echo]"))

    with pytest.raises(DeclarationError) as raised:
        read_package(plugin_copy)

    assert "cannot unmarshal !!seq into string" in str(raised.value)
    assert "failed to unmarshal model file: provider/echo.yaml" in str(raised.value)


def test_an_unknown_parameter_template_fails_the_plugin(plugin_copy: Path) -> None:
    model = plugin_copy / "models" / "llm" / "echo-1.yaml"
    model.write_text(model.read_text().replace("use_template: temperature", "use_template: heat"))

    with pytest.raises(DeclarationError, match="use_template heat not found"):
        read_package(plugin_copy)


def test_an_icon_without_its_file_fails_the_install(plugin_copy: Path) -> None:
    (plugin_copy / "_assets" / "icon.svg").unlink()

    with pytest.raises(DeclarationError, match=r"file not found: icon\.svg"):
        read_package(plugin_copy)


def test_model_globs_do_not_cross_directories(plugin_copy: Path) -> None:
    provider = plugin_copy / "provider" / "echo.yaml"
    text = provider.read_text().replace("- models/llm/echo-1.yaml", "- models/*/echo-1.yaml")
    provider.write_text(text.replace("- models/tts/echo-tts.yaml", "- models/*.yaml"))

    models = read_package(plugin_copy).declaration["model"]["models"]

    assert "echo-1" in [model["model"] for model in models]
    assert "echo-tts" not in [model["model"] for model in models]


MINIMAL_TOOL_PLUGIN = {
    "manifest.yaml": """\
version: 0.0.1
type: plugin
author: someone
name: minimal
label: {en_US: Minimal}
description: {en_US: The plugin's description.}
icon: icon.svg
tags: [search]
plugins:
  tools: [provider.yaml]
created_at: 2025-01-01T00:00:00Z
""",
    "provider.yaml": """\
identity:
  author: someone
  name: minimal
  label: {en_US: Minimal}
  description: {en_US: ""}
  icon: icon.svg
credentials_for_provider:
  token:
    type: secret-input
    label: {en_US: Token}
tools:
  - tool.yaml
  - identity: {author: someone, name: inline, label: {en_US: Inline}}
    description: {human: {en_US: Inline}, llm: Inline}
""",
    "tool.yaml": """\
identity: {author: someone, name: listed, label: {en_US: Listed}}
description: {human: {en_US: Listed}, llm: Listed}
parameters:
  - {name: q, type: string, form: llm, label: {en_US: Q}, human_description: {en_US: Q}}
""",
    "_assets/icon.svg": "<svg/>",
}


def test_a_tool_provider_as_the_daemon_decodes_it(tmp_path: Path) -> None:
    for name, text in MINIMAL_TOOL_PLUGIN.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)

    package = read_package(tmp_path)
    tool = package.declaration["tool"]

    assert package.category == "tool"
    # a credentials map becomes a list, each entry named by its key
    assert [(c["name"], c["type"]) for c in tool["credentials_schema"]] == [
        ("token", "secret-input")
    ]
    # inline tools first, then the listed files, as the decoder appends them
    assert [t["identity"]["name"] for t in tool["tools"]] == ["inline", "listed"]
    # the manifest's description and tags fill the provider's empty ones
    assert encode_any(tool["identity"]["description"]) == '{"en_US":"The plugin\'s description."}'
    assert tool["identity"]["tags"] == ["search"]
    assert tool["tools"][0]["parameters"] is None
    assert encode_any(tool["tools"][0]).endswith(
        '"parameters":null,"has_runtime_parameters":false}'
    )


def test_created_at_is_written_as_go_writes_a_time(plugin_copy: Path) -> None:
    manifest = plugin_copy / "manifest.yaml"
    manifest.write_text(
        manifest.read_text().replace("2025-01-01T00:00:00Z", "2025-01-01 08:30:00.120000+02:00")
    )

    declaration = read_package(plugin_copy).declaration

    assert declaration["created_at"] == "2025-01-01T08:30:00.12+02:00"
    assert encode_any(declaration).count('"created_at":"2025-01-01T08:30:00.12+02:00"') == 1


def test_a_float_that_fits_an_int_field_is_truncated_as_yaml_v3_does(plugin_copy: Path) -> None:
    provider = plugin_copy / "provider" / "echo.yaml"
    provider.write_text(provider.read_text().replace("required: false", "max_length: 12.9"))

    model = read_package(plugin_copy).declaration["model"]
    form = model["provider_credential_schema"]["credential_form_schemas"][0]

    assert form["max_length"] == 12


class _PluginWithoutItsIcon:
    """A loaded plugin whose directory the daemon's installer would refuse."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.identity = PluginIdentity("emulator", "echo", "0.1.0", "0" * 64)


def test_a_plugin_the_daemon_could_not_install_fails_the_lists_loudly(plugin_copy: Path) -> None:
    (plugin_copy / "_assets" / "icon.svg").unlink()
    plugins = PluginSet()
    plugins.add(_PluginWithoutItsIcon(plugin_copy))  # type: ignore[arg-type]
    app = create_app(Settings(key=KEY), plugins)

    with TestClient(app, base_url="http://daemon") as client:
        answer = get(client, "/management/models", params={"page": 1, "page_size": 10})

    status, code, error_type, message = failure(answer)
    assert (status, code, error_type) == (200, -500, "PluginDaemonInternalServerError")
    assert message.startswith("emulator: the daemon could not install emulator/echo:0.1.0@")
    assert "file not found: icon.svg" in message


def test_the_openapi_document_lists_the_management_routes(client: httpx.Client) -> None:
    document = client.get("/_emulator/openapi.json", headers={"X-Api-Key": KEY}).json()

    for route in management.ROUTES:
        path = "/plugin/{tenant_id}" + route.path.replace("{identifier:path}", "{identifier}")
        summary = document["paths"][path][route.method.lower()]["summary"]
        assert summary.endswith("(not implemented by the emulator)") == (route.handler is None)


def test_omitempty_leaves_out_only_nil_pointers(plugin_copy: Path) -> None:
    manifest = plugin_copy / "manifest.yaml"
    manifest.write_text(manifest.read_text() + 'privacy: ""\n')
    empty_positions = plugin_copy / "models" / "llm" / "_position.yaml"
    empty_positions.write_text("[]\n")
    provider = plugin_copy / "provider" / "echo.yaml"
    provider.write_text(
        provider.read_text().replace(
            "  llm:\n    predefined:",
            "  llm:\n    position: models/llm/_position.yaml\n    predefined:",
        )
    )

    encoded = json.loads(encode_any(read_package(plugin_copy).declaration))

    assert encoded["privacy"] == ""
    assert "repo" not in encoded
    assert encoded["model"]["position"] == {"llm": []}


def test_an_event_parameters_zero_default_and_bounds_are_kept() -> None:
    parameter = decode_struct(
        EventParameter,
        yaml.compose("name: n\ntype: number\ndefault: 0\nmin: 0\nlabel: {en_US: N}\n"),
    )

    assert encode_any(parameter) == (
        '{"name":"n","label":{"en_US":"N"},"type":"number","required":false,"default":0,"min":0}'
    )


def test_a_package_run_in_a_subprocess_lists_the_same_declaration(
    tmp_path: Path, client: httpx.Client
) -> None:
    package = tmp_path / "echo.difypkg"
    with zipfile.ZipFile(package, "w") as archive:
        for path in sorted(EXAMPLE_PLUGIN.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(EXAMPLE_PLUGIN).as_posix())
    plugins = PluginSet.load([package], choose=lambda path: RuntimeChoice("subprocess"))
    params = {"page": 1, "page_size": 256}
    try:
        with TestClient(create_app(Settings(key=KEY), plugins)) as packaged:
            [from_package] = data(get(packaged, "/management/models", params=params))
    finally:
        plugins.close()
    in_process = next(
        row
        for row in data(get(client, "/management/models", params=params))
        if row["plugin_id"] == "emulator/echo"
    )

    assert from_package["declaration"] == in_process["declaration"]
