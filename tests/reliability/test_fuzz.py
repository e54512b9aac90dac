"""Fuzzing: tens of thousands of malformed bodies, headers, paths and methods.

Most go to the app as raw ASGI calls in process (they can carry any header bytes and any
path); a few thousand go over loopback to `python -m emulator serve`. Every answer must be one
the daemon could give: no 5xx except where the daemon answers 500 (a polling route's plugin
error; a body too deep for a plugin, see the README's limitations), every error a daemon
envelope or gin's NoRoute body, every stream framed as the daemon frames it. After each test
the server still serves a dispatch and has nothing in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import string
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.config import Settings
from emulator.contract.routes import ROUTES
from emulator.faults import FAULT_KINDS
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app
from helpers import KEY, TENANT, payload
from support import ServedEmulator, Tally, wait_for
from wire import Answer, Request, call, daemon_problems

IN_PROCESS_BODIES = 10_000
IN_PROCESS_HEADERS = 6_000
IN_PROCESS_PATHS = 10_000
OVER_THE_SOCKET = 2_000
FAULT_RULES = 1_000
ANSWER_SECONDS = 10.0


def fuzz(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


# The app in process --------------------------------------------------------------------------


class Fuzzed:
    """The app under fuzz, on an event loop of this thread; each call is checked."""

    def __init__(self, app: Any, tally: Tally) -> None:
        self.app = app
        self.tally = tally
        self.loop = asyncio.new_event_loop()

    def send(self, request: Request, keep_faults: bool = False) -> Answer:
        answer = self.loop.run_until_complete(call(self.app, request, ANSWER_SECONDS))
        self.tally.fuzzed(answer.status)
        if not keep_faults:
            self.app.state.faults.clear()  # a fuzzed POST /_emulator/faults may have added one
        problems = daemon_problems(request, answer)
        assert not problems, f"{request!r}\n-> {answer.status} {answer.body[:500]!r}\n{problems}"
        return answer

    def still_serves(self) -> None:
        wait_for(lambda: not plugin_threads(), 30, plugin_threads)
        assert self.app.state.plugins.active_requests == 0
        headers = dispatch_headers(b"emulator/echo")
        body = json.dumps(payload("llm/invoke", with_app_id=True)).encode()
        path = f"/plugin/{TENANT}/dispatch/llm/invoke".encode()
        answer = self.send(Request("POST", path, headers, [body]))
        assert answer.status == 200 and b'\\"app_id\\": \\"app-9f3c\\"' in answer.body
        health = self.send(Request("GET", b"/health/check", []))
        assert health.status == 200


def plugin_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("plugin ")]


@pytest.fixture(scope="module")
def fuzzed(plugins: PluginSet, tally: Tally) -> Iterator[Fuzzed]:
    """Only the example plugin: the test plugins that hang or never end would slow it down."""
    echo = PluginSet(plugin for plugin in plugins if plugin.identity.plugin_id == "emulator/echo")
    app = create_app(Settings(key=KEY, max_execution_timeout=5), echo)
    fuzzed = Fuzzed(app, tally)
    yield fuzzed
    fuzzed.still_serves()
    fuzzed.loop.close()


def dispatch_headers(plugin_id: bytes, content_type: bytes = b"application/json") -> list[Any]:
    return [
        (b"x-api-key", KEY.encode()),
        (b"x-plugin-id", plugin_id),
        (b"content-type", content_type),
    ]


# Strategies ----------------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """`value` with one change somewhere inside: replaced, removed, added, renamed, wrapped."""
    if isinstance(value, dict) and value and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(sorted(value)))
        operation = draw(st.sampled_from(["descend", "delete", "rename", "add"]))
        changed = dict(value)
        if operation == "descend":
            changed[key] = draw(mutated(value[key]))
        elif operation == "delete":
            del changed[key]
        elif operation == "rename":
            changed[draw(st.sampled_from([key.upper(), key.title(), key + "_", ""]))] = changed.pop(
                key
            )
        else:
            changed[draw(st.text(max_size=10))] = draw(JSON_VALUES)
        return changed
    if isinstance(value, list) and value and draw(st.integers(0, 3)):
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], draw(mutated(value[index])), *value[index + 1 :]]
    return draw(JSON_VALUES | st.just([value]) | st.just({"v": value}))


@st.composite
def edited(draw: st.DrawFn, text: str) -> bytes:
    """The JSON text as sent, sometimes broken: cut short, followed by junk, a key repeated,
    bytes changed."""
    data = text.encode()
    edit = draw(st.sampled_from(["none", "none", "cut", "trail", "repeat", "bytes"]))
    if edit == "cut":
        return data[: draw(st.integers(0, len(data)))]
    if edit == "trail":
        return data + draw(st.binary(min_size=1, max_size=20))
    if edit == "repeat" and data.startswith(b"{"):
        key = draw(st.sampled_from(["app_id", "data", "user_id", "tenant_id", "APP_ID"]))
        repeated = json.dumps({key: draw(JSON_VALUES)})[1:-1]
        return b"{" + repeated.encode() + b"," + data[1:]
    if edit == "bytes" and data:
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at + 1 :]
    return data


@st.composite
def dify_payloads_mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    route = draw(st.sampled_from(ROUTES))
    body = payload(route.path, with_app_id=draw(st.booleans()))
    for _ in range(draw(st.integers(1, 3))):
        body = draw(mutated(body))
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    return route.path, draw(edited(text))


def deeply_nested(depth: int) -> bytes:
    body = payload("llm/invoke", with_app_id=True)
    body["data"]["credentials"] = {"k": "v"}
    text = json.dumps(body).replace('{"k": "v"}', '{"a": ' * depth + "1" + "}" * depth)
    return text.encode()


ROUTE_PATHS = st.sampled_from([route.path for route in ROUTES])
BODIES = st.one_of(
    dify_payloads_mutated(),
    st.tuples(ROUTE_PATHS, st.binary(max_size=300)),
    st.tuples(ROUTE_PATHS, JSON_VALUES.map(lambda value: json.dumps(value).encode())),
    st.tuples(st.just("llm/invoke"), st.integers(1, 3000).map(deeply_nested)),
)


@st.composite
def split(draw: st.DrawFn, body: bytes) -> list[bytes]:
    """The body as the server may receive it: in one piece or several."""
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
    edges = [0, *cuts, len(body)]
    return [body[start:end] for start, end in itertools.pairwise(edges)]


@fuzz(IN_PROCESS_BODIES)
@given(body=BODIES, data=st.data())
def test_malformed_bodies_get_daemon_answers(
    fuzzed: Fuzzed, body: tuple[str, bytes], data: st.DataObject
) -> None:
    route, raw = body
    path = f"/plugin/{TENANT}/dispatch/{route}".encode()

    fuzzed.send(Request("POST", path, dispatch_headers(b"emulator/echo"), data.draw(split(raw))))


HEADER_NAMES = st.sampled_from(
    [
        b"x-api-key",
        b"x-plugin-id",
        b"content-type",
        b"content-length",
        b"transfer-encoding",
        b"authorization",
        b"cookie",
        b"x-emulator-warning",
        b"accept",
        b"x-user-id",
    ]
) | st.binary(min_size=1, max_size=12)
HEADER_VALUES = st.sampled_from(
    [
        KEY.encode(),
        b"emulator/echo",
        b"emulator/echo ",
        b"Emulator/Echo",
        b"tests/faulty",
        b"application/json",
        b"APPLICATION/JSON; charset=utf-8",
        b"application/json;charset=UTF-16",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"text/plain",
        b"",
        b"-1",
        b"99999999999999999999",
        b"chunked",
    ]
) | st.binary(max_size=40)


@fuzz(IN_PROCESS_HEADERS)
@given(
    route=st.sampled_from(ROUTES),
    headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=8),
    keep=st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_malformed_headers_get_daemon_answers(
    fuzzed: Fuzzed, route: Any, headers: list[tuple[bytes, bytes]], keep: list[bool]
) -> None:
    kept = [
        pair
        for pair, wanted in zip(dispatch_headers(b"emulator/echo"), keep, strict=True)
        if wanted
    ]
    body = json.dumps(payload(route.path, with_app_id=True)).encode()
    path = f"/plugin/{TENANT}/dispatch/{route.path}".encode()

    fuzzed.send(Request("POST", path, headers + kept, [body]))


SEGMENTS = st.sampled_from(
    [
        "plugin",
        TENANT,
        "dispatch",
        "llm",
        "invoke",
        "model",
        "polling",
        "start",
        "_emulator",
        "journal",
        "faults",
        "reset",
        "1",
        "health",
        "check",
        "",
        ".",
        "..",
        "%2F",
        "%00",
        "%",
        "%zz",
        "%E4%BD%A0",
        "management",
        "e",
    ]
) | st.text(string.ascii_letters + string.digits + "-._~%!$&'()*+,;=:@", max_size=10)
METHODS = st.sampled_from(
    ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "post", "X"]
)


@st.composite
def paths(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["route", "segments", "route"]))
    if kind == "route":
        route = draw(st.sampled_from(ROUTES)).path
        tenant = draw(st.sampled_from([TENANT, "", "x", "%20", "a%2Fb", TENANT.upper()]))
        path = f"/plugin/{tenant}/dispatch/{route}"
        path = draw(st.sampled_from([path, path + "/", path.upper(), "/" + path, path + "/x"]))
    else:
        path = "/" + "/".join(draw(st.lists(SEGMENTS, max_size=6)))
    query = draw(st.sampled_from(["", "?", "?a=1", "?route=llm/invoke&limit=x", "?limit=-1"]))
    return (path + query).encode()


@fuzz(IN_PROCESS_PATHS)
@given(method=METHODS, path=paths(), body=st.sampled_from([b"", b"{}", b"null", b"[", b"\xff"]))
def test_unknown_paths_and_methods_get_gins_answers(
    fuzzed: Fuzzed, method: str, path: bytes, body: bytes
) -> None:
    fuzzed.send(Request(method, path, dispatch_headers(b"emulator/echo"), [body]))


# Over the socket -----------------------------------------------------------------------------

PRINTABLE = st.text(string.ascii_letters + string.digits + " -_./;=:,", max_size=30)


@pytest.fixture(scope="module")
def socket_client(served: ServedEmulator) -> Iterator[httpx.Client]:
    with served.client(timeout=30) as client:
        yield client


@fuzz(OVER_THE_SOCKET)
@given(
    method=METHODS.filter(lambda method: method not in ("CONNECT", "HEAD")),
    path=paths(),
    body=BODIES.map(lambda body: body[1][:65536]),
    headers=st.dictionaries(
        st.sampled_from(["X-Plugin-ID", "Content-Type", "X-User-ID", "Accept"]),
        PRINTABLE.map(str.strip),
    ),
    keyed=st.booleans(),
)
def test_over_the_socket_every_answer_is_the_daemons(
    socket_client: httpx.Client,
    served: ServedEmulator,
    tally: Tally,
    method: str,
    path: bytes,
    body: bytes,
    headers: dict[str, str],
    keyed: bool,
) -> None:
    sent = {"X-Api-Key": KEY} if keyed else {}
    url = httpx.URL(served.url).copy_with(raw_path=path)

    response = socket_client.request(method, url, content=body, headers={**sent, **headers})
    tally.fuzzed(response.status_code)

    request = Request(method, response.request.url.raw_path, [])
    answer = Answer(response.status_code, response.headers.raw, response.content, complete=True)
    problems = daemon_problems(request, answer)
    assert not problems, f"{method} {path!r} -> {response.status_code} {response.text[:500]}"


def test_after_the_socket_fuzz_the_server_still_serves(served: ServedEmulator) -> None:
    wait_for(lambda: served.health()["active_dispatch_requests"] == 0, 30)
    with served.client(timeout=30) as client:
        response = client.post(
            f"/plugin/{TENANT}/dispatch/llm/invoke",
            content=json.dumps(payload("llm/invoke", with_app_id=True)),
            headers={
                "X-Api-Key": KEY,
                "X-Plugin-ID": "emulator/echo",
                "Content-Type": "application/json",
            },
        )
    assert response.status_code == 200 and '\\"app_id\\": \\"app-9f3c\\"' in response.text


# Fault rules set over HTTP -------------------------------------------------------------------

PLAUSIBLE = {
    "error_type": st.sampled_from(["PluginDaemonInternalServerError", "InvokeRateLimitError"]),
    "message": st.text(max_size=8),
    "status": st.sampled_from([404, 500, 503]),
    "args": st.none() | st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    "after_items": st.integers(0, 3),
    "seconds": st.sampled_from([0, 0.01]),
    "items": st.integers(1, 3),
}
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.sampled_from([99, 100, 200, 204, 304, 600]),
    st.sampled_from([-1.0, float("nan"), float("inf")]),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=12),
)


@st.composite
def fault_rules(draw: st.DrawFn) -> dict[str, Any]:
    """A rule for POST /_emulator/faults: mostly plausible fields, now and then an odd value
    or a field the kind does not have."""
    kind = draw(st.sampled_from(sorted(FAULT_KINDS)))
    names = [field.name for field in dataclasses.fields(FAULT_KINDS[kind])]
    fault: dict[str, Any] = {"kind": kind}
    for name in names:
        if draw(st.integers(0, 4)):
            fault[name] = draw(PLAUSIBLE[name] if draw(st.integers(0, 3)) else ODD)
    if not draw(st.integers(0, 9)):
        fault[draw(st.sampled_from(sorted(PLAUSIBLE)))] = draw(ODD)
    if fault.get("seconds") in (99, 100, 200, 204, 304, 600):
        fault["seconds"] = 0.01  # a real delay, but the test's time is short
    route = draw(st.sampled_from([None, "llm/invoke", "model/polling/start"]))
    return {"fault": fault, "route": route, "times": draw(st.sampled_from([None, 1, 0, "1"]))}


def strict_json(text: bytes) -> Any:
    """JSON as Go and JavaScript read it: no NaN or Infinity."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@fuzz(FAULT_RULES)
@given(rule=fault_rules())
def test_a_fault_rule_is_refused_or_injected_as_a_daemon_answer(
    fuzzed: Fuzzed, rule: dict[str, Any]
) -> None:
    fuzzed.app.state.faults.clear()
    keyed = [(b"x-api-key", KEY.encode())]
    route = rule["route"] or "llm/invoke"
    body = json.dumps(payload(route, with_app_id=True)).encode()
    dispatch = Request(
        "POST", f"/plugin/{TENANT}/dispatch/{route}".encode(), dispatch_headers(b"emulator/echo")
    )

    added = fuzzed.send(
        Request("POST", b"/_emulator/faults", keyed, [json.dumps(rule).encode()]), keep_faults=True
    )
    if added.status != 201:
        assert added.status == 400, (rule, added)
        return
    listed = fuzzed.send(Request("GET", b"/_emulator/faults", keyed), keep_faults=True)
    strict_json(listed.body)
    dispatch.body_parts = [body]
    answer = fuzzed.loop.run_until_complete(call(fuzzed.app, dispatch, ANSWER_SECONDS))
    fuzzed.tally.fuzzed(answer.status)
    fuzzed.app.state.faults.clear()

    assert answer.raised is None, (rule, answer)
    assert answer.complete or rule["fault"]["kind"] == "cut_after", (rule, answer)
    if rule["fault"]["kind"] == "error_answer":
        fault = rule["fault"]
        assert answer.status == fault.get("status", 500), (rule, answer)
        error = strict_json(strict_json(answer.body)["message"].encode())
        assert (error["error_type"], error["message"]) == (fault["error_type"], fault["message"])
    assert not _envelope_problems(answer, streamed=answer.status == 200), (rule, answer)


def _envelope_problems(answer: Answer, streamed: bool) -> list[str]:
    """An injected answer: any status the rule asked for, but every item a daemon envelope."""
    items = answer.body.split(b"\n\n") if streamed else [answer.body]
    problems = [] if b"emulator error" not in answer.body else ["an emulator error"]
    for item in filter(None, items):
        envelope = strict_json(item.removeprefix(b"data: "))
        if envelope["code"] != 0:
            error = strict_json(envelope["message"].encode())
            inner = error["message"]
            if error["error_type"] == "PluginInvokeError":
                plugin_error = strict_json(inner.encode())
                if not isinstance(plugin_error["message"], str):
                    problems.append(f"a plugin error whose message is no string: {plugin_error}")
                if not isinstance(plugin_error["error_type"], str):
                    problems.append(f"a plugin error whose type is no string: {plugin_error}")
                if not isinstance(plugin_error.get("args"), dict | None):
                    problems.append(f"a plugin error whose args are no object: {plugin_error}")
    return problems


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "error_answer", "error_type": "PluginDaemonInternalServerError", "message": 1},
        {
            "kind": "error_answer",
            "error_type": "PluginDaemonInternalServerError",
            "message": "m",
            "status": 100,
        },
        {
            "kind": "error_answer",
            "error_type": "PluginDaemonInternalServerError",
            "message": "m",
            "status": 204,
        },
        {"kind": "plugin_error_item", "error_type": ["x"], "message": "m"},
        {"kind": "plugin_error_item", "error_type": "x", "message": None},
        {"kind": "plugin_error_item", "error_type": "x", "message": "m", "args": [1]},
        {"kind": "delay_first_item", "seconds": float("nan")},
        {"kind": "delay_between_items", "seconds": float("inf")},
    ],
)
def test_a_fault_the_daemon_could_never_answer_is_refused(
    fuzzed: Fuzzed, fault: dict[str, Any]
) -> None:
    """Found by the test above: each of these was taken (201), then answered a 500 'emulator
    error', broke the connection, wrote NaN into GET /_emulator/faults, or made an item whose
    plugin error Dify cannot decode."""
    fuzzed.app.state.faults.clear()
    keyed = [(b"x-api-key", KEY.encode())]
    rule = json.dumps({"fault": fault, "route": "llm/invoke"}).encode()

    answer = fuzzed.send(Request("POST", b"/_emulator/faults", keyed, [rule]))

    assert answer.status == 400, answer.body
    assert json.loads(json.loads(answer.body)["message"])["message"].startswith("fault rule: ")
