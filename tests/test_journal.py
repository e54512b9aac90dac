"""The journal: what each dispatch brought, what the plugin saw, what went back; bounded."""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from dify_client import envelopes
from emulator.config import Settings
from emulator.contract.findings import ContractWarning, WarningKind
from emulator.contract.routes import ROUTES
from emulator.contract.wrapper import bind
from emulator.journal import DEFAULT_WARNING_CAP, REDACTED, Dispatch, Journal
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app
from emulator.sessions import request_line
from helpers import ECHO, KEY, dispatch_headers, dispatch_url, payload

LLM = next(route for route in ROUTES if route.path == "llm/invoke")
TENANT = "4a1c3e52-6f0b-4d8e-9a7c-2b5d8e1f0a93"


@pytest.fixture
def journal(app: Any) -> Journal:
    recorded: Journal = app.state.journal
    recorded.clear()
    return recorded


def invoke(client: httpx.Client, body: Any, route: str = "llm/invoke", **headers: str) -> Any:
    content = body if isinstance(body, str) else json.dumps(body)
    merged = {**dispatch_headers(), **headers}
    return client.post(dispatch_url(route, TENANT), content=content, headers=merged)


# What one dispatch records -----------------------------------------------------------------


def test_a_dispatch_records_the_road_from_body_to_plugin_and_back(
    client: httpx.Client, journal: Journal
) -> None:
    body = payload("llm/invoke", with_app_id=True)

    response = invoke(client, body)

    (dispatch,) = journal.dispatches()
    assert (dispatch.route, dispatch.tenant_id, dispatch.plugin_id) == ("llm/invoke", TENANT, ECHO)
    assert ("x-api-key", REDACTED) in dispatch.headers
    assert ("x-plugin-id", ECHO) in dispatch.headers
    assert KEY not in json.dumps(dispatch.to_json())
    assert dispatch.wrapper is not None and dispatch.data is not None
    assert dispatch.wrapper["app_id"] == "app-9f3c" and "data" not in dispatch.wrapper
    assert dispatch.data["credentials"] == {"api_key": "echo-key"}
    assert dispatch.warnings == []
    assert dispatch.session is not None
    assert json.loads(dispatch.request_line or "")["session_id"] == dispatch.session.session_id
    assert (dispatch.session.app_id, dispatch.session.user_id) == ("app-9f3c", "user-7b21")
    assert dispatch.session.context == {"credentials": {"tool_credentials": {}}}
    assert dispatch.status == 200 and dispatch.streamed and dispatch.error is None
    assert [json.loads(item) for item in dispatch.items] == envelopes(response.content)
    assert b"".join(b"data: " + item.encode() + b"\n\n" for item in dispatch.items) == (
        response.content
    )
    assert dispatch.first_item_after is not None and dispatch.ended_after is not None
    assert 0 <= dispatch.first_item_after <= dispatch.ended_after


def test_the_request_line_is_the_one_the_plugin_was_handed(
    client: httpx.Client, journal: Journal
) -> None:
    invoke(client, payload("llm/invoke", with_app_id=True))

    (dispatch,) = journal.dispatches()
    assert dispatch.session is not None
    bound = bind(
        LLM.data_model,
        json.dumps(payload("llm/invoke", with_app_id=True)).encode(),
        TENANT,
        "application/json",
    )
    assert dispatch.request_line == request_line(LLM, bound.values, dispatch.session.session_id)


def test_the_bound_values_are_what_go_made_of_the_body(
    client: httpx.Client, journal: Journal
) -> None:
    body = {**payload("llm/invoke"), "app_id": 123}

    invoke(client, body)

    (dispatch,) = journal.dispatches()
    assert dispatch.app_id == "" and dispatch.session is not None and dispatch.session.app_id == ""
    assert [str(w.kind) for w in dispatch.warnings] == ["id_coerced"]
    (warning,) = dispatch.to_json()["warnings"]
    assert warning == {
        "kind": "id_coerced",
        "path": "$.app_id",
        "expected": warning["expected"],
        "actual": warning["actual"],
        "effect": warning["effect"],
        "text": str(dispatch.warnings[0]),
    }
    assert warning["text"].startswith("id_coerced $.app_id: expected a string or null, got")


def test_a_refused_dispatch_records_its_answer_and_nothing_it_never_reached(
    client: httpx.Client, journal: Journal
) -> None:
    response = invoke(client, payload("llm/invoke"), **{"X-Api-Key": "wrong"})

    (dispatch,) = journal.dispatches()
    assert dispatch.status == 401 and not dispatch.streamed
    assert dispatch.items == [response.text] and dispatch.error == response.text
    assert (dispatch.wrapper, dispatch.data, dispatch.request_line, dispatch.session) == (
        None,
        None,
        None,
        None,
    )
    assert dispatch.ended


def test_a_plugin_error_is_recorded_as_the_item_that_ended_the_stream(
    client: httpx.Client, journal: Journal
) -> None:
    body = payload("llm/invoke", with_app_id=True)
    body["data"].update(model="boom", provider="raising")

    response = invoke(client, body, **{"X-Plugin-ID": "tests/raising"})

    (dispatch,) = journal.dispatches()
    assert dispatch.error == dispatch.items[-1]
    assert json.loads(dispatch.error)["code"] == -500
    assert response.text.endswith(f"data: {dispatch.error}\n\n")


def test_items_past_the_per_dispatch_cap_are_counted_not_kept() -> None:
    dispatch = Dispatch(1, "llm/invoke", TENANT, ECHO, [], item_cap=2)

    for n in range(5):
        dispatch.record_item(f'{{"n":{n}}}')

    assert dispatch.items == ['{"n":0}', '{"n":1}'] and dispatch.items_dropped == 3


@pytest.mark.parametrize(
    "name", ["X-Api-Key", "Authorization", "Cookie", "Proxy-Authorization", "X-Inner-Api-Key"]
)
def test_secret_headers_are_redacted(name: str) -> None:
    dispatch = Dispatch(1, "llm/invoke", TENANT, ECHO, [(name, "secret-value"), ("X-Other", "v")])

    assert dispatch.headers == ((name, REDACTED), ("X-Other", "v"))
    assert "secret-value" not in json.dumps(dispatch.to_json())


def test_warnings_past_the_per_dispatch_cap_are_counted_not_kept() -> None:
    dispatch = Dispatch(1, "llm/invoke", TENANT, ECHO, [], warning_cap=2)
    warnings = [_unknown_key(n) for n in range(5)]

    dispatch.record_binding({"app_id": None, "data": {}}, warnings)
    dispatch.add_warnings([_unknown_key(5)])

    assert dispatch.warnings == warnings[:2] and dispatch.warnings_dropped == 4
    assert dispatch.to_json()["warnings_dropped"] == 4


def test_a_body_with_5000_unknown_keys_keeps_100_warnings(
    client: httpx.Client, journal: Journal
) -> None:
    body = payload("llm/invoke", with_app_id=True)
    body["data"].update({f"extra_{n}": n for n in range(5000)})

    response = invoke(client, body)

    (dispatch,) = journal.dispatches()
    assert response.status_code == 200
    assert len(dispatch.warnings) == DEFAULT_WARNING_CAP == 100
    assert dispatch.warnings_dropped == 4900
    assert dispatch.warnings[0].path == "$.data.extra_0"


def _unknown_key(n: int) -> ContractWarning:
    return ContractWarning(WarningKind.UNKNOWN_KEY, f"$.data.k{n}", "a field", "k", "dropped")


# Bounded ----------------------------------------------------------------------------------


def test_the_cap_holds_and_memory_stays_flat_over_10000_dispatches() -> None:
    journal = Journal(cap=100)
    body = json.dumps(payload("llm/invoke", with_app_id=True)).encode()
    item = json.dumps({"code": 0, "message": "success", "data": {"text": "x" * 300}})
    traced: dict[int, int] = {}
    tracemalloc.start()
    try:
        for n in range(1, 10_001):
            _record(journal, body, item)
            if n in (100, 1_000, 4_000, 7_000, 10_000):
                traced[n] = _traced()
    finally:
        tracemalloc.stop()

    assert (len(journal), journal.dropped, journal.total) == (100, 9_900, 10_000)
    assert [d.number for d in journal.dispatches()] == list(range(9_901, 10_001))
    per_dispatch = traced[100] / 100
    assert per_dispatch > 1_000  # each dispatch really holds its own bound values and items
    growth = max(traced[n] for n in traced if n >= 1_000) - traced[1_000]
    assert growth < 5 * per_dispatch, f"grew {growth} bytes over 9,000 dropped dispatches"


def _record(journal: Journal, body: bytes, item: str) -> None:
    """What the server records for one dispatch, each part a new object of realistic size."""
    dispatch = journal.open("llm/invoke", TENANT, ECHO, [("x-api-key", KEY)])
    values = json.loads(body)
    dispatch.record_binding({**values, "tenant_id": TENANT}, [])
    dispatch.request_line = "".join(["x" * len(body), str(dispatch.number)])
    dispatch.record_session(_session(str(dispatch.number)))
    for n in range(5):
        dispatch.record_item(item[:-1] + str(n))
    dispatch.record_end()


def _session(session_id: str) -> dict[str, Any]:
    ids = dict.fromkeys(("conversation_id", "message_id", "endpoint_id"))
    return {"session_id": session_id, "app_id": "app-9f3c", "user_id": "u", "context": {}, **ids}


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_drops_are_counted_through_the_server(plugins: PluginSet) -> None:
    journal = Journal(cap=20)
    with TestClient(create_app(Settings(key=KEY), plugins, journal)) as client:
        for n in range(50):
            invoke(client, {**payload("llm/num_tokens"), "app_id": f"app-{n}"}, "llm/num_tokens")

    assert (len(journal), journal.dropped, journal.total) == (20, 30, 50)
    assert [d.app_id for d in journal.dispatches()] == [f"app-{n}" for n in range(30, 50)]


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Journal(cap=0)


# Over HTTP --------------------------------------------------------------------------------


@pytest.fixture
def recorded(client: httpx.Client, journal: Journal) -> Iterator[httpx.Client]:
    for app_id in ("app-1", "app-2"):
        invoke(client, {**payload("llm/invoke"), "app_id": app_id})
    invoke(client, payload("llm/num_tokens", with_app_id=True), "llm/num_tokens")
    yield client


def test_the_journal_is_listed_over_http_with_filters(recorded: httpx.Client) -> None:
    def listed(**query: str) -> list[tuple[int, str, str | None]]:
        response = recorded.get("/_emulator/journal", params=query, headers={"X-Api-Key": KEY})
        assert response.status_code == 200
        return [
            (d["number"], d["route"], d["wrapper"]["app_id"]) for d in response.json()["dispatches"]
        ]

    assert listed() == [
        (1, "llm/invoke", "app-1"),
        (2, "llm/invoke", "app-2"),
        (3, "llm/num_tokens", "app-9f3c"),
    ]
    assert listed(route="llm/num_tokens") == [(3, "llm/num_tokens", "app-9f3c")]
    assert listed(app_id="app-2") == [(2, "llm/invoke", "app-2")]
    assert listed(plugin_id="nobody/none") == []
    assert listed(limit="1") == [(3, "llm/num_tokens", "app-9f3c")]


def test_app_id_null_over_http_lists_the_dispatches_without_one(
    recorded: httpx.Client,
) -> None:
    invoke(recorded, payload("llm/invoke"))  # no app_id
    invoke(recorded, {**payload("llm/invoke"), "app_id": None})
    invoke(recorded, {**payload("llm/invoke"), "app_id": "null"})

    response = recorded.get(
        "/_emulator/journal", params={"app_id": "null"}, headers={"X-Api-Key": KEY}
    )

    assert [d["number"] for d in response.json()["dispatches"]] == [4, 5]


def test_the_journal_document_carries_every_recorded_part(recorded: httpx.Client) -> None:
    document = recorded.get("/_emulator/journal", headers={"X-Api-Key": KEY}).json()

    assert (document["cap"], document["total"], document["dropped"]) == (1000, 3, 0)
    first = document["dispatches"][0]
    assert set(first) == {
        "number", "route", "tenant_id", "plugin_id", "headers", "received_at", "wrapper",
        "data", "warnings", "request_line", "session", "status", "streamed", "items",
        "items_dropped", "error", "faults", "client_gone", "timings", "warnings_dropped",
        "backwards",
    }  # fmt: skip
    assert first["session"]["app_id"] == "app-1"
    assert json.loads(first["items"][0])["code"] == 0


def test_delete_resets_the_journal_over_http(recorded: httpx.Client, journal: Journal) -> None:
    response = recorded.delete("/_emulator/journal", headers={"X-Api-Key": KEY})

    assert response.status_code == 204
    assert (len(journal), journal.total) == (0, 0)


def test_the_journal_over_http_needs_the_key(recorded: httpx.Client) -> None:
    for method in ("GET", "DELETE"):
        response = recorded.request(method, "/_emulator/journal")
        assert response.status_code == 401
        assert json.loads(response.json()["message"])["error_type"] == (
            "PluginDaemonUnauthorizedError"
        )
