"""Our decoder and validator against real Go (encoding/json + go-playground/validator).

The oracle in ../shared/oracle decodes and validates bodies for the 16 model routes with the
daemon's rules. It is built from Debian packages on first use; without it these tests skip.
Its Go types come from the reference, not the daemon's source, and differ from the daemon in
embedded struct names (InvokeTextEmbeddingSchema, ...) and field order, so errors are compared
by field and tag, not by namespace and order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.contract.gojson import encode, encode_any
from emulator.contract.gotypes import Struct
from emulator.contract.routes import ROUTES_BY_PATH
from emulator.contract.wrapper import bind
from helpers import ROOT

ORACLE_DIR = Path(os.environ.get("ORACLE_DIR", ROOT.parent / "shared" / "oracle"))
ORACLE_BINARY = Path(os.environ.get("ORACLE_BUILD_DIR", "/tmp/oracle-build")) / "oracle"
IDS = ("tenant_id", "user_id", "app_id", "conversation_id", "message_id", "endpoint_id")


class Oracle:
    def __init__(self, binary: Path) -> None:
        self._process = subprocess.Popen(
            [str(binary)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def ask(self, route: str, body: str, tenant_id: str) -> dict[str, Any]:
        assert self._process.stdin and self._process.stdout
        line = {"route": route, "tenant_id": tenant_id, "body": body}
        self._process.stdin.write(json.dumps(line) + "\n")
        self._process.stdin.flush()
        return json.loads(self._process.stdout.readline())  # type: ignore[no-any-return]

    def close(self) -> None:
        self._process.kill()
        self._process.wait()


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    if not ORACLE_BINARY.exists():
        build = ORACLE_DIR / "build.sh"
        if not build.exists():
            pytest.skip(f"no Go oracle at {ORACLE_DIR}")
        result = subprocess.run(["bash", str(build)], capture_output=True, text=True, timeout=600)
        if result.returncode != 0 or not ORACLE_BINARY.exists():
            pytest.skip(f"the Go oracle did not build: {result.stderr[-500:]}")
    running = Oracle(ORACLE_BINARY)
    yield running
    running.close()


def oracle_cases() -> list[dict[str, Any]]:
    path = ORACLE_DIR / "cases.jsonl"
    if not path.exists():
        return []
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # No path tenant (the /v2 routes) is out of scope; 10000-deep bodies are checked on their own.
    return [c for c in cases if c.get("tenant_id") and "body" in c and "nesting" not in c["id"]]


def error_fields(text: str | None) -> set[str]:
    """`Field:tag` for each validator line: what the oracle and the daemon's source agree on."""
    if not text:
        return set()
    return {
        f"{line.split("'")[1].rsplit('.', 1)[-1]}:{line.split("'")[-2]}"
        for line in text.split("\n")
    }


def assert_agrees(oracle: Oracle, route_path: str, body: str, tenant_id: str = "t") -> None:
    route = ROUTES_BY_PATH[route_path]
    go = oracle.ask(route_path, body, tenant_id)
    ours = bind(route.data_model, body.encode(), tenant_id, "application/json")

    assert (400 if ours.validation_errors else 200) == go["status"], body
    assert error_fields("\n".join(ours.validation_errors)) == error_fields(
        go["validation_error"]
    ), body
    assert {name: ours.values[name] for name in IDS} == {name: go["decoded"][name] for name in IDS}
    assert json.loads(encode_any(ours.values["context"])) == go["decoded"]["context"]
    assert json.loads(encode(ours.data, Struct(route.data_model))) == go["decoded"]["data"], body


NO_ORACLE = f"no Go oracle cases at {ORACLE_DIR} (set ORACLE_DIR)"
CASES = oracle_cases() or [pytest.param({"id": "none"}, marks=pytest.mark.skip(reason=NO_ORACLE))]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["id"])
def test_every_oracle_case_decodes_and_validates_as_go_does(
    oracle: Oracle, case: dict[str, Any]
) -> None:
    assert_agrees(oracle, case["route"], case["body"], case["tenant_id"])


JUNK = ['"', "{", "}", "[", ",", ":", "\\", "x", " ", "null", "1e400", "\\ud800"]
ODD_VALUES = [None, True, 0, -1, 2**63, 1.5, "", "x", "llm", [], [1, "a", None], {}, {"a": 1}]
FIELDS = [
    "app_id",
    "APP_ID",
    "user_id",
    "data",
    "provider",
    "model",
    "model_type",
    "stream",
    "tools",
    "tool_choice",
    "prompt_messages",
    "texts",
    "docs",
    "top_n",
    "query",
    "credentials",
    "plugin_state",
    "documents",
    "input_type",
    "voice",
    "content_text",
]


@st.composite
def mutated_bodies(draw: st.DrawFn) -> tuple[str, str]:
    """A case body with a few textual or structural mutations, as a fuzzer would make."""
    cases = oracle_cases()
    case = draw(st.sampled_from(cases))
    body: str = case["body"]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 3))
        if kind == 0 and body:
            cut = draw(st.integers(0, len(body) - 1))
            body = body[:cut] + draw(st.sampled_from(JUNK)) + body[cut:]
        elif kind in (1, 2):
            try:
                document = json.loads(body)
            except ValueError:
                continue
            if not isinstance(document, dict):
                continue
            target = (
                document["data"]
                if isinstance(document.get("data"), dict) and kind == 1
                else document
            )
            target[draw(st.sampled_from(FIELDS))] = draw(st.sampled_from(ODD_VALUES))
            body = json.dumps(document)
        elif body.endswith("}"):
            key, value = draw(st.sampled_from(FIELDS)), draw(st.sampled_from(ODD_VALUES))
            body = body[:-1] + f", {json.dumps(key)}: {json.dumps(value)}" + "}"
    return case["route"], body


@pytest.mark.skipif(not oracle_cases(), reason=NO_ORACLE)
@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutated_bodies())
def test_mutated_bodies_decode_and_validate_as_go_does(
    oracle: Oracle, mutation: tuple[str, str]
) -> None:
    assert_agrees(oracle, *mutation)


def test_nesting_up_to_gos_limit_is_decoded_and_beyond_it_is_malformed() -> None:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 50_000))
    deep = "[" * 9_990 + "]" * 9_990
    body = '{"context":{"x":' + deep + '},"data":{"provider":"p","model":"m","model_type":"llm"}}'
    route = ROUTES_BY_PATH["llm/invoke"]

    ours = bind(route.data_model, body.encode(), "t", "application/json")
    deeper = body.replace("[", "[[", 20).replace("]", "]]", 20)
    too_deep = bind(route.data_model, deeper.encode(), "t", "application/json")

    assert ours.validation_errors == []
    assert too_deep.validation_errors != []
