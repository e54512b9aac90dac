"""Each fault, as a client sees it: status, headers, framing, and the daemon's envelopes.

Expected envelopes are written out by hand from the daemon's reference (daemon-contract.md
§2.3, §2.4, §7.3), compared as text and decoded level by level as Dify decodes them.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dify_client import DaemonError, collect
from emulator.faults import (
    CutAfter,
    DelayBetweenItems,
    DelayFirstItem,
    ErrorAnswer,
    FaultError,
    Faults,
    NoNode,
    PluginErrorItem,
    TimeoutItem,
)
from emulator.journal import Journal
from emulator.testing._inprocess import INCOMPLETE_BODY, AppLoop
from helpers import KEY, dispatch_headers, dispatch_url, payload

TENANT = "4a1c3e52-6f0b-4d8e-9a7c-2b5d8e1f0a93"
INTERNAL = "PluginDaemonInternalServerError"
JSON_TYPE = "application/json; charset=utf-8"
NO_NODE = (
    '{"code":-500,"message":"{\\"message\\":\\"no available node, plugin runtime not found\\",'
    '\\"error_type\\":\\"PluginDaemonInternalServerError\\",\\"args\\":null}","data":null}'
)
NO_RUNTIME = (
    '{"code":-500,"message":"{\\"message\\":\\"failed to get plugin runtime\\",'
    '\\"error_type\\":\\"PluginDaemonInternalServerError\\",\\"args\\":null}","data":null}'
)
PLUGIN_NOT_FOUND = (
    '{"code":-404,"message":"{\\"message\\":\\"plugin not found\\",'
    '\\"error_type\\":\\"PluginNotFoundError\\",\\"args\\":null}","data":null}'
)
KILLED_BY_TIMEOUT = (
    '{"code":-500,"message":"{\\"message\\":\\"killed by timeout\\",'
    '\\"error_type\\":\\"PluginDaemonInternalServerError\\",\\"args\\":null}","data":null}'
)
RATE_LIMITED = (
    '{"code":-500,"message":"{\\"message\\":\\"{\\\\\\"args\\\\\\":{\\\\\\"retry_after\\\\\\":3},'
    '\\\\\\"error_type\\\\\\":\\\\\\"InvokeRateLimitError\\\\\\",'
    '\\\\\\"message\\\\\\":\\\\\\"slow \\\\\\\\u003cdown\\\\\\\\u003e\\\\\\"}\\",'
    '\\"error_type\\":\\"PluginInvokeError\\",\\"args\\":null}","data":null}'
)


@pytest.fixture
def faults(app: Any) -> Iterator[Faults]:
    injected: Faults = app.state.faults
    injected.clear()
    yield injected
    injected.clear()


@pytest.fixture
def journal(app: Any) -> Journal:
    recorded: Journal = app.state.journal
    recorded.clear()
    return recorded


@pytest.fixture(scope="module")
def app_loop(app: Any) -> Iterator[AppLoop]:
    loop = AppLoop(app)
    yield loop
    loop.close()


@pytest.fixture(params=["in_process", "loopback"])
def daemon(request: pytest.FixtureRequest, faults: Faults) -> Iterator[httpx.Client]:
    """Each test runs through the pytest fixture's in-process bridge and over a socket."""
    if request.param == "in_process":
        loop: AppLoop = request.getfixturevalue("app_loop")
        transport = httpx.MockTransport(loop.answer)
        with httpx.Client(base_url="http://daemon", transport=transport) as client:
            yield client
    else:
        live_url: str = request.getfixturevalue("live_url")
        with httpx.Client(base_url=live_url, timeout=30) as client:
            yield client


def invoke(client: httpx.Client, route: str = "llm/invoke", **data: Any) -> httpx.Response:
    body = payload(route, with_app_id=True)
    body["data"].update(data)
    return client.post(
        dispatch_url(route, TENANT), content=json.dumps(body), headers=dispatch_headers()
    )


def nested(envelope: str) -> list[dict[str, Any]]:
    """Each level of an error envelope, decoded as Dify decodes it: outer, daemon error, and
    for a PluginInvokeError the plugin's own error."""
    outer = json.loads(envelope)
    levels = [outer, json.loads(outer["message"])]
    if levels[1]["error_type"] == "PluginInvokeError":
        levels.append(json.loads(levels[1]["message"]))
    return levels


def framed(*envelopes: str) -> bytes:
    return b"".join(b"data: " + envelope.encode() + b"\n\n" for envelope in envelopes)


# Answers before the stream -----------------------------------------------------------------


def test_no_node_is_404_with_the_internal_error_envelope(
    daemon: httpx.Client, faults: Faults
) -> None:
    faults.add(NoNode(), route="llm/invoke")

    response = invoke(daemon)

    assert response.status_code == 404
    assert response.headers["content-type"] == JSON_TYPE
    assert response.text == NO_NODE
    assert nested(response.text) == [
        {"code": -500, "message": nested(NO_NODE)[0]["message"], "data": None},
        {
            "message": "no available node, plugin runtime not found",
            "error_type": "PluginDaemonInternalServerError",
            "args": None,
        },
    ]


def test_no_node_stands_in_for_an_installed_plugin_and_keeps_the_key_check_first(
    client: httpx.Client, faults: Faults
) -> None:
    faults.add(NoNode(), plugin_id="langgenius/openai")
    headers = dispatch_headers("langgenius/openai")

    answered = client.post(dispatch_url("llm/invoke", TENANT), content="{}", headers=headers)
    unkeyed = client.post(
        dispatch_url("llm/invoke", TENANT), content="{}", headers={**headers, "X-Api-Key": "no"}
    )

    assert (answered.status_code, answered.text) == (404, NO_NODE)
    assert unkeyed.status_code == 401


def test_an_error_answer_is_the_daemons_plain_json_error(
    daemon: httpx.Client, faults: Faults
) -> None:
    faults.add(ErrorAnswer("PluginDaemonInternalServerError", "failed to get plugin runtime"))

    response = invoke(daemon)

    assert response.status_code == 500
    assert response.headers["content-type"] == JSON_TYPE
    assert response.text == NO_RUNTIME
    assert nested(response.text)[1] == {
        "message": "failed to get plugin runtime",
        "error_type": "PluginDaemonInternalServerError",
        "args": None,
    }


# Where answers come in the daemon's check order (§2.3) ------------------------------------


def test_a_no_node_fault_naming_no_plugin_keeps_the_installation_check_first(
    client: httpx.Client, faults: Faults, journal: Journal
) -> None:
    rule = faults.add(NoNode(), route="llm/invoke", times=1)
    headers = dispatch_headers("nobody/none")
    body = json.dumps(payload("llm/invoke", with_app_id=True))

    response = client.post(dispatch_url("llm/invoke", TENANT), content=body, headers=headers)

    assert (response.status_code, response.text) == (404, PLUGIN_NOT_FOUND)
    assert faults.rules() == [rule]  # not used up: the daemon never looked for a node
    assert journal.dispatches()[0].faults == []


def test_an_error_answer_comes_after_validation_as_the_daemons_runtime_error_does(
    client: httpx.Client, faults: Faults, journal: Journal
) -> None:
    faults.add(ErrorAnswer("PluginDaemonInternalServerError", "failed to get plugin runtime"))
    url = dispatch_url("llm/invoke", TENANT)

    invalid = client.post(url, content="{}", headers=dispatch_headers())
    unknown = client.post(url, content="{}", headers=dispatch_headers("nobody/none"))
    valid = invoke(client)

    assert invalid.status_code == 400
    assert json.loads(invalid.json()["message"])["error_type"] == "PluginDaemonBadRequestError"
    assert (unknown.status_code, unknown.text) == (404, PLUGIN_NOT_FOUND)
    assert (valid.status_code, valid.text) == (500, NO_RUNTIME)
    refused, not_found, answered = journal.dispatches()
    assert refused.faults == not_found.faults == []
    assert answered.faults == ["error_answer (rule 1)"]
    assert answered.app_id == "app-9f3c" and answered.session is None


def test_an_error_answer_naming_a_plugin_stands_in_for_its_installation(
    client: httpx.Client, faults: Faults
) -> None:
    faults.add(
        ErrorAnswer("PluginDaemonInternalServerError", "failed to get plugin runtime"),
        plugin_id="langgenius/openai",
    )
    headers = dispatch_headers("langgenius/openai")
    url = dispatch_url("llm/invoke", TENANT)

    invalid = client.post(url, content="{}", headers=headers)
    valid = client.post(
        url, content=json.dumps(payload("llm/invoke", with_app_id=True)), headers=headers
    )

    assert invalid.status_code == 400
    assert (valid.status_code, valid.text) == (500, NO_RUNTIME)


# Error items inside the stream ------------------------------------------------------------


def test_a_plugin_error_item_ends_the_stream_as_a_plugins_error_would(
    daemon: httpx.Client, faults: Faults, journal: Journal
) -> None:
    error = PluginErrorItem("InvokeRateLimitError", "slow <down>", {"retry_after": 3}, 1)
    faults.add(error, route="llm/invoke")

    response = invoke(daemon)

    (dispatch,) = journal.dispatches()
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.content == framed(dispatch.items[0], RATE_LIMITED)
    assert json.loads(dispatch.items[0])["code"] == 0
    assert nested(RATE_LIMITED) == [
        {"code": -500, "message": nested(RATE_LIMITED)[0]["message"], "data": None},
        {
            "message": nested(RATE_LIMITED)[1]["message"],
            "error_type": "PluginInvokeError",
            "args": None,
        },
        {
            "args": {"retry_after": 3},
            "error_type": "InvokeRateLimitError",
            "message": "slow <down>",
        },
    ]
    assert collect(response.content)[1] == DaemonError("InvokeRateLimitError", "slow <down>")


def test_a_plugin_error_item_on_a_polling_route_is_a_500_as_the_daemon_answers_it(
    daemon: httpx.Client, faults: Faults
) -> None:
    faults.add(PluginErrorItem("InvokeRateLimitError", "slow <down>", {"retry_after": 3}))

    response = invoke(daemon, "model/polling/start")

    assert response.status_code == 500
    assert response.headers["content-type"] == JSON_TYPE
    assert response.text == RATE_LIMITED


def test_the_timeout_item_is_the_one_the_daemons_own_timeout_writes(
    daemon: httpx.Client, faults: Faults, journal: Journal
) -> None:
    faults.add(TimeoutItem(after_items=2))

    response = invoke(daemon, model_parameters={"chunks": 5})

    first, second, last = journal.dispatches()[0].items
    assert response.content == framed(first, second, KILLED_BY_TIMEOUT)
    assert last == KILLED_BY_TIMEOUT
    assert nested(last)[1] == {
        "message": "killed by timeout",
        "error_type": "PluginDaemonInternalServerError",
        "args": None,
    }


@pytest.mark.parametrize(
    ("fault", "ending"),
    [
        (PluginErrorItem("InvokeRateLimitError", "slow <down>", {"retry_after": 3}, 50), None),
        (TimeoutItem(after_items=50), KILLED_BY_TIMEOUT),
    ],
)
def test_an_ending_after_more_items_than_the_plugin_sends_takes_the_place_of_its_end(
    daemon: httpx.Client,
    faults: Faults,
    journal: Journal,
    fault: PluginErrorItem | TimeoutItem,
    ending: str | None,
) -> None:
    invoke(daemon)
    faults.add(fault)

    response = invoke(daemon)

    plain, faulted = journal.dispatches()
    assert faulted.items == [*faulted.items[: len(plain.items)], ending or RATE_LIMITED]
    assert [json.loads(item)["code"] for item in plain.items] == [0] * len(plain.items) != []
    assert response.content == framed(*faulted.items)
    assert faulted.faults == [f"{fault.kind} (rule 1)"]


def test_an_ending_after_more_items_than_a_polling_answer_has_is_its_500(
    daemon: httpx.Client, faults: Faults
) -> None:
    faults.add(PluginErrorItem("InvokeRateLimitError", "slow <down>", {"retry_after": 3}, 5))

    response = invoke(daemon, "model/polling/start")

    assert (response.status_code, response.text) == (500, RATE_LIMITED)


def test_an_ending_the_plugins_own_error_came_before_is_not_listed_as_applied(
    client: httpx.Client, faults: Faults, journal: Journal
) -> None:
    faults.add(PluginErrorItem("InvokeRateLimitError", "slow <down>", None, after_items=5))
    body = payload("llm/invoke", with_app_id=True)
    body["data"].update(model="boom", provider="raising")

    response = client.post(
        dispatch_url("llm/invoke", TENANT),
        content=json.dumps(body),
        headers=dispatch_headers("tests/raising"),
    )

    (dispatch,) = journal.dispatches()
    error = collect(response.content)[1]
    assert error is not None and error.error_type == "InvokeBadRequestError"
    assert len(dispatch.items) == 3 and dispatch.faults == []


# A cut connection --------------------------------------------------------------------------


def test_a_cut_stream_gives_its_items_then_the_clients_protocol_error(
    daemon: httpx.Client, faults: Faults, journal: Journal
) -> None:
    faults.add(CutAfter(2))
    body = payload("llm/invoke", with_app_id=True)
    received = b""

    with (
        pytest.raises(httpx.RemoteProtocolError) as raised,
        daemon.stream(
            "POST",
            dispatch_url("llm/invoke", TENANT),
            content=json.dumps(body),
            headers=dispatch_headers(),
        ) as response,
    ):
        assert (response.status_code, response.headers["content-type"]) == (
            200,
            "text/event-stream",
        )
        for chunk in response.iter_bytes():
            received += chunk

    assert str(raised.value) == INCOMPLETE_BODY
    assert journal.settle()
    (dispatch,) = journal.dispatches()
    assert received == framed(*dispatch.items) and len(dispatch.items) == 2
    assert dispatch.faults == ["cut_after (rule 1)"]


def test_a_cut_after_more_items_than_the_plugin_sends_drops_the_end(
    daemon: httpx.Client, faults: Faults, journal: Journal
) -> None:
    invoke(daemon)
    faults.add(CutAfter(50))
    received = b""

    with (
        pytest.raises(httpx.RemoteProtocolError),
        daemon.stream(
            "POST",
            dispatch_url("llm/invoke", TENANT),
            content=json.dumps(payload("llm/invoke", with_app_id=True)),
            headers=dispatch_headers(),
        ) as response,
    ):
        for chunk in response.iter_bytes():
            received += chunk

    assert journal.settle()
    plain, cut = journal.dispatches()
    assert received == framed(*cut.items) and len(cut.items) == len(plain.items) > 0
    assert cut.faults == ["cut_after (rule 1)"]


# Delays ----------------------------------------------------------------------------------


def test_a_delayed_first_item_holds_the_status_and_headers_too(
    live_url: str, faults: Faults, journal: Journal
) -> None:
    faults.add(DelayFirstItem(0.5))
    body = json.dumps(payload("llm/invoke", with_app_id=True))
    url = live_url + dispatch_url("llm/invoke", TENANT)

    with (
        httpx.Client(timeout=httpx.Timeout(5, read=0.2)) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post(url, content=body, headers=dispatch_headers())
    with httpx.Client(timeout=5) as patient:
        started = time.monotonic()
        with patient.stream("POST", url, content=body, headers=dispatch_headers()) as response:
            headers_after = time.monotonic() - started
            received = response.read()

    assert journal.settle()
    delayed = journal.dispatches()[-1]
    assert response.headers["content-type"] == "text/event-stream"
    assert received == framed(*delayed.items) and collect(received)[1] is None
    assert delayed.first_item_after is not None and delayed.first_item_after >= 0.5

    assert headers_after >= 0.5


def test_delays_between_items_space_every_item_after_the_first(
    live_url: str, faults: Faults, journal: Journal
) -> None:
    faults.add(DelayBetweenItems(0.15), route="llm/invoke")
    body = payload("llm/invoke", with_app_id=True)
    body["data"]["model_parameters"] = {"chunks": 2}
    arrivals = []
    received = []

    with (
        httpx.Client(base_url=live_url, timeout=10) as client,
        client.stream(
            "POST",
            dispatch_url("llm/invoke", TENANT),
            content=json.dumps(body),
            headers=dispatch_headers(),
        ) as response,
    ):
        for line in response.iter_lines():
            if line:
                arrivals.append(time.monotonic())
                received.append(line)

    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(arrivals) == 4
    assert min(gaps) >= 0.15 * 0.9
    assert journal.settle()
    assert received == [f"data: {item}" for item in journal.dispatches()[0].items]


# Which dispatches a rule touches -----------------------------------------------------------


def test_a_rule_touches_only_its_route_and_plugin_and_only_so_many_times(
    client: httpx.Client, faults: Faults
) -> None:
    faults.add(NoNode(), route="llm/invoke", plugin_id="emulator/echo", times=2)
    faults.add(NoNode(), route="rerank/invoke")

    statuses = [invoke(client).status_code for _ in range(3)]
    other_plugin = client.post(
        dispatch_url("llm/invoke", TENANT), content="{}", headers=dispatch_headers("twins/twin-a")
    )

    assert statuses == [404, 404, 200]
    assert other_plugin.status_code == 400  # validation: the rule is for another plugin
    assert [rule.route for rule in faults.rules()] == ["rerank/invoke"]


def test_later_rules_win_for_the_same_setting(
    client: httpx.Client, faults: Faults, journal: Journal
) -> None:
    faults.add(TimeoutItem(after_items=0))
    faults.add(PluginErrorItem("InvokeRateLimitError", "slow <down>", {"retry_after": 3}))
    faults.add(DelayBetweenItems(0))

    assert invoke(client).content == framed(RATE_LIMITED)
    assert journal.dispatches()[0].faults == ["plugin_error_item (rule 2)"]  # what took effect


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CutAfter(0), "items: expected an integer of at least 1, got 0"),
        (lambda: DelayFirstItem(-1), "seconds: expected a non-negative number, got -1"),
        (lambda: DelayFirstItem(float("nan")), "seconds: expected a finite number, got nan"),
        (lambda: DelayBetweenItems(float("inf")), "seconds: expected a finite number, got inf"),
        (lambda: ErrorAnswer("Oops", "x"), "error_type: expected one of"),
        (lambda: TimeoutItem(after_items=True), "after_items: expected an integer"),
        *(
            (
                lambda status=status: ErrorAnswer(INTERNAL, "x", status),
                f"status: expected an HTTP error status from 400 to 599, got {status!r}",
            )
            for status in (101, 200, 204, 302, 399, 600, True, 500.0)
        ),
        (
            lambda: PluginErrorItem("E", "m", {f"k{n}": n for n in range(11)}),
            "args: expected an object of at most 10 keys or null, got 11 keys",
        ),
        (lambda: PluginErrorItem("E", "m", [1]), "args: expected an object or null, got [1]"),  # type: ignore[arg-type]
        (lambda: PluginErrorItem("E", "m", {1: "x"}), "args: expected string keys, got 1"),  # type: ignore[dict-item]
        (lambda: PluginErrorItem("E", "m", {"k": {1, 2}}), "args: expected JSON values"),
    ],
)
def test_a_fault_that_cannot_be_is_refused_with_a_reason(make: Any, message: str) -> None:
    with pytest.raises(FaultError, match=re.escape(message)):
        make()


def test_plugin_error_args_of_10_keys_are_taken() -> None:
    assert len(PluginErrorItem("E", "m", {f"k{n}": n for n in range(10)}).args or {}) == 10


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"plugin_id": 5}, "plugin_id: expected a plugin id string, got 5"),
        ({"plugin_id": ""}, "plugin_id: expected a plugin id string, got ''"),
        ({"route": ["llm/invoke"]}, "route: expected one of llm/invoke"),
    ],
)
def test_a_rule_for_a_target_that_cannot_be_is_refused(
    faults: Faults, target: dict[str, Any], message: str
) -> None:
    with pytest.raises(FaultError, match=re.escape(message)):
        faults.add(NoNode(), **target)


def test_a_stream_fault_on_a_plain_json_route_is_refused(faults: Faults) -> None:
    with pytest.raises(FaultError, match="model/polling/start answers plain JSON"):
        faults.add(CutAfter(1), route="model/polling/start")
    with pytest.raises(FaultError, match="route: expected one of llm/invoke"):
        faults.add(NoNode(), route="llm/nothing")


# Over HTTP -------------------------------------------------------------------------------


def test_faults_are_set_listed_and_cleared_over_http(client: httpx.Client, faults: Faults) -> None:
    keyed = {"X-Api-Key": KEY}
    spec = {"fault": {"kind": "no_node"}, "route": "llm/invoke", "times": 1}

    added = client.post("/_emulator/faults", json=spec, headers=keyed)
    listed = client.get("/_emulator/faults", headers=keyed).json()
    answered = invoke(client)

    assert added.status_code == 201
    assert added.json() == {
        "id": added.json()["id"],
        "fault": {"kind": "no_node"},
        "route": "llm/invoke",
        "plugin_id": None,
        "times": 1,
    }
    assert listed == {"rules": [added.json()]}
    assert (answered.status_code, answered.text) == (404, NO_NODE)
    assert client.get("/_emulator/faults", headers=keyed).json() == {"rules": []}
    client.post(
        "/_emulator/faults", json={"fault": {"kind": "cut_after", "items": 1}}, headers=keyed
    )
    assert client.delete("/_emulator/faults", headers=keyed).status_code == 204
    assert faults.rules() == []


def test_reset_over_http_clears_faults_and_journal(
    client: httpx.Client, faults: Faults, journal: Journal
) -> None:
    faults.add(DelayFirstItem(0))
    invoke(client)

    response = client.post("/_emulator/reset", headers={"X-Api-Key": KEY})

    assert response.status_code == 204
    assert (faults.rules(), len(journal)) == ([], 0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"fault": {"kind": "slow"}}, "fault rule: kind: expected one of no_node, error_answer"),
        ({"fault": {"kind": "cut_after"}}, "fault rule: cut_after: "),
        ({"route": "llm/invoke"}, "fault rule: fault is missing"),
        (
            {"fault": {"kind": "cut_after", "items": 1}, "route": "model/polling/check"},
            "plain JSON",
        ),
        (
            {
                "fault": {
                    "kind": "error_answer",
                    "error_type": INTERNAL,
                    "message": "m",
                    "status": 204,
                }
            },
            "fault rule: status: expected an HTTP error status from 400 to 599, got 204",
        ),
        (
            {
                "fault": {
                    "kind": "plugin_error_item",
                    "error_type": "E",
                    "message": "m",
                    "args": {f"k{n}": n for n in range(11)},
                }
            },
            "fault rule: args: expected an object of at most 10 keys or null, got 11 keys",
        ),
        (
            {"fault": {"kind": "no_node"}, "plugin_id": 5},
            "fault rule: plugin_id: expected a plugin id string, got 5",
        ),
        (
            {"fault": {"kind": "no_node"}, "time": 1},
            "fault rule: unknown key 'time' (expected fault, route, plugin_id, times)",
        ),
        ({"fault": "no_node"}, "fault rule: fault: expected an object with a kind, got 'no_node'"),
        ([{"fault": {"kind": "no_node"}}], "fault rule: expected a JSON object, got a list"),
    ],
)
def test_a_bad_fault_over_http_is_a_400_that_says_why(
    client: httpx.Client, faults: Faults, spec: Any, message: str
) -> None:
    response = client.post("/_emulator/faults", json=spec, headers={"X-Api-Key": KEY})

    assert response.status_code == 400
    assert message in json.loads(response.json()["message"])["message"]
    assert faults.rules() == []


@pytest.mark.parametrize("seconds", ["NaN", "Infinity", "-Infinity", "-1"])
def test_seconds_json_cannot_carry_are_refused_over_http(
    client: httpx.Client, faults: Faults, seconds: str
) -> None:
    spec = '{"fault": {"kind": "delay_first_item", "seconds": ' + seconds + "}}"

    response = client.post("/_emulator/faults", content=spec, headers={"X-Api-Key": KEY})

    assert response.status_code == 400
    assert "fault rule: seconds: expected a" in json.loads(response.json()["message"])["message"]
    assert faults.rules() == []
