"""The exported contract: fresh, valid JSON Schema, faithful; and the breaking-change checker."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from emulator.contract.diff import Change, diff
from emulator.contract.export import contract_documents, render
from emulator.contract.model import MODEL_TYPES
from emulator.contract.routes import ROUTES, ROUTES_BY_PATH
from emulator.contract.wrapper import bind
from helpers import PAYLOADS, ROOT, TENANT

CONTRACTS = ROOT / "contracts"
Edit = Callable[[dict[str, Any]], None]


def test_the_committed_contracts_are_what_the_models_export() -> None:
    documents = contract_documents()
    committed = {
        path.relative_to(CONTRACTS).as_posix() for path in CONTRACTS.rglob("*") if path.is_file()
    }

    assert committed == set(documents), "run: python -m emulator contracts export"
    for relative, document in documents.items():
        assert (CONTRACTS / relative).read_text() == render(document), (
            f"contracts/{relative} is stale: run python -m emulator contracts export"
        )


def test_the_index_names_every_dispatch_route_the_emulator_serves() -> None:
    index = json.loads((CONTRACTS / "index.json").read_text())

    assert [route["path"] for route in index["routes"]] == [route.path for route in ROUTES]
    assert index["daemon"]["commit"].startswith("bdb5642a")
    for route in index["routes"]:
        assert (CONTRACTS / route["request_schema"]).is_file()
        assert (CONTRACTS / route["response_schema"]).is_file()


@pytest.mark.parametrize("name", sorted(contract_documents()))
def test_every_schema_is_valid_draft_2020_12(name: str) -> None:
    if name.endswith(".schema.json"):
        Draft202012Validator.check_schema(contract_documents()[name])


@pytest.mark.parametrize("payload_file", sorted(PAYLOADS.glob("*.json")), ids=lambda p: p.name)
def test_a_payload_satisfies_its_schema_exactly_when_the_daemon_takes_it_as_is(
    payload_file: Path,
) -> None:
    route = ROUTES_BY_PATH[payload_file.name.split(".")[0].replace("__", "/")]
    schema = contract_documents()[f"requests/{route.path.replace('/', '__')}.schema.json"]
    body = payload_file.read_bytes()

    bound = bind(route.data_model, body, TENANT, "application/json")

    taken_as_is = not bound.validation_errors and not bound.warnings
    assert Draft202012Validator(schema).is_valid(json.loads(body)) is taken_as_is, bound.warnings


def test_the_schema_says_what_go_enforces() -> None:
    llm = Draft202012Validator(contract_documents()["requests/llm__invoke.schema.json"])
    good = json.loads((PAYLOADS / "llm__invoke.with_app_id.json").read_text())

    def refused(edit: Edit) -> bool:
        body = copy.deepcopy(good)
        edit(body)
        return not llm.is_valid(body)

    assert refused(lambda b: b["data"].update(model_type="rerank"))  # eq=llm
    assert refused(lambda b: b["data"].update(provider=""))  # required means non-empty
    assert refused(lambda b: b.update(app_id=123))  # the daemon would forward ""
    assert not refused(lambda b: b.update(app_id=None))
    assert not refused(lambda b: b["data"].update(tools=[]))  # a required list may be empty


# The breaking-change checker ---------------------------------------------------------------


@pytest.fixture
def contract_pair(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(CONTRACTS, old)
    shutil.copytree(CONTRACTS, new)
    return old, new


def edit_schema(folder: Path, relative: str, edit: Edit) -> None:
    path = folder / relative
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))


def breaks(changes: list[Change], direction: str) -> list[Change]:
    return [c for c in changes if getattr(c, direction).breaks]


def test_app_id_on_model_dispatch_is_compatible_both_ways(contract_pair: tuple[Path, Path]) -> None:
    before, after = contract_pair
    for route in ROUTES:
        edit_schema(
            before,
            f"requests/{route.path.replace('/', '__')}.schema.json",
            lambda d: d["properties"].pop("app_id"),
        )

    changes = diff(before, after)

    assert {c.path for c in changes} == {"app_id"} and len(changes) == len(ROUTES)
    assert not any(c.breaks for c in changes)
    assert all("ignores `app_id`" in c.new_to_old.reason for c in changes)


def test_user_id_made_optional_breaks_new_dify_on_an_old_daemon(
    contract_pair: tuple[Path, Path],
) -> None:
    old, new = contract_pair

    def required_user_id(document: dict[str, Any]) -> None:
        document["properties"]["user_id"] = {"type": "string", "minLength": 1}
        document["required"].append("user_id")

    edit_schema(old, "requests/llm__invoke.schema.json", required_user_id)

    changes = diff(old, new)

    assert breaks(changes, "old_to_new") == []
    broken = breaks(changes, "new_to_old")
    assert broken and {c.path for c in broken} == {"user_id"}
    assert "new Dify may leave `user_id` out; an old daemon requires it" in [
        c.new_to_old.reason for c in broken
    ]


def test_chunks_without_prompt_messages_break_old_dify_on_a_new_daemon(
    contract_pair: tuple[Path, Path],
) -> None:
    old, new = contract_pair

    def without_prompt_messages(document: dict[str, Any]) -> None:
        document["properties"].pop("prompt_messages")
        document["required"].remove("prompt_messages")

    edit_schema(new, "responses/llm__invoke.schema.json", without_prompt_messages)

    (change,) = diff(old, new)

    assert (change.part, change.path, change.what) == (
        "response",
        "prompt_messages",
        "required member removed",
    )
    assert not change.old_to_new.breaks
    assert change.new_to_old == change.new_to_old.__class__(
        True, "new daemon no longer sends `prompt_messages`; an old Dify requires it"
    )


def add_member(name: str, schema: dict[str, Any], required: bool = False) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        document["$defs"]["RequestInvokeLLM"]["properties"][name] = schema
        if required:
            document["$defs"]["RequestInvokeLLM"]["required"].append(name)

    return edit


def on_data(name: str, change: Callable[[dict[str, Any]], None]) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        change(document["$defs"]["RequestInvokeLLM"]["properties"][name])

    return edit


def unrequire(name: str) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        document["$defs"]["RequestInvokeLLM"]["required"].remove(name)

    return edit


def remove_member(name: str) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        definition = document["$defs"]["RequestInvokeLLM"]
        definition["properties"].pop(name)
        if name in definition.get("required", []):
            definition["required"].remove(name)

    return edit


def allow(schema: dict[str, Any], *values: str) -> None:
    schema.pop("const", None)
    schema["enum"] = list(values)


# (what changes in the new contract, the edit, old->new breaks, new->old breaks)
SYNTHETIC: list[tuple[str, Edit, bool, bool]] = [
    (
        "optional nullable member added",
        add_member("seed", {"type": ["integer", "null"]}),
        False,
        False,
    ),
    ("required member added", add_member("region", {"type": "string"}, required=True), True, False),
    ("required member made optional", unrequire("provider"), False, True),
    ("optional member removed", remove_member("json_schema"), False, False),
    ("required member removed", remove_member("provider"), False, True),
    ("type narrowed", on_data("stop", lambda s: s.update(type="array")), True, False),
    (
        "type widened",
        on_data("stream", lambda s: s.update(type=["boolean", "string"])),
        False,
        True,
    ),
    (
        "enum value added",
        on_data("model_type", lambda s: allow(s, "llm", "vlm")),
        False,
        True,
    ),
    ("enum value removed", add_member("tier", {"enum": ["a"]}), False, False),
    (
        "model_type rule loosened",
        on_data("model_type", lambda s: allow(s, *MODEL_TYPES)),
        False,
        True,
    ),
    (
        "minimum length raised",
        on_data("credential_type", lambda s: s.update(anyOf=[{"type": "string", "minLength": 3}])),
        True,
        False,
    ),
    (
        "member made nullable",
        on_data("provider", lambda s: s.update(type=["string", "null"])),
        False,
        True,
    ),
]


@pytest.mark.parametrize(
    ("what", "edit", "old_to_new", "new_to_old"), SYNTHETIC, ids=[row[0] for row in SYNTHETIC]
)
def test_each_kind_of_change_gets_its_verdict(
    contract_pair: tuple[Path, Path], what: str, edit: Edit, old_to_new: bool, new_to_old: bool
) -> None:
    old, new = contract_pair
    edit_schema(new, "requests/llm__invoke.schema.json", edit)

    changes = diff(old, new)

    assert changes, what
    assert any(c.old_to_new.breaks for c in changes) is old_to_new, what
    assert any(c.new_to_old.breaks for c in changes) is new_to_old, what
    assert all(c.old_to_new.reason and c.new_to_old.reason for c in changes)


def test_an_enum_narrowed_in_the_new_contract_breaks_old_producers(
    contract_pair: tuple[Path, Path],
) -> None:
    old, new = contract_pair
    edit_schema(old, "requests/llm__invoke.schema.json", add_member("tier", {"enum": ["a", "b"]}))
    edit_schema(new, "requests/llm__invoke.schema.json", add_member("tier", {"enum": ["a"]}))

    (change,) = diff(old, new)

    assert change.old_to_new.breaks and not change.new_to_old.breaks
    assert '"b"' in change.old_to_new.reason


def test_routes_added_and_removed(contract_pair: tuple[Path, Path]) -> None:
    old, new = contract_pair
    index = json.loads((new / "index.json").read_text())
    index["routes"] = index["routes"][1:]  # llm/invoke gone
    (new / "index.json").write_text(json.dumps(index))

    (removed,) = diff(old, new)
    (added,) = diff(new, old)

    assert removed.what == "route removed" and removed.old_to_new.breaks
    assert added.what == "route added" and added.new_to_old.breaks and not added.old_to_new.breaks


def run_diff(old: Path, new: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "emulator", "contracts", "diff", str(old), str(new)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_exit_status_tells_ci_whether_anything_breaks(
    contract_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    old, new = contract_pair
    assert run_diff(old, new).returncode == 0

    edit_schema(new, "requests/llm__invoke.schema.json", remove_member("provider"))
    broken = run_diff(old, new)
    assert broken.returncode == 1
    assert "new Dify -> old daemon: BREAKS" in broken.stdout

    unusable = run_diff(old, tmp_path / "nothing-here")
    assert unusable.returncode == 2 and "unusable contract" in unusable.stderr


def test_export_writes_the_same_files_as_committed(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "emulator", "contracts", "export", "--out", str(tmp_path)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)

    for path in CONTRACTS.rglob("*.json"):
        assert (tmp_path / path.relative_to(CONTRACTS)).read_text() == path.read_text()


def test_export_to_a_place_it_cannot_write_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_text("")
    command = [sys.executable, "-m", "emulator", "contracts", "export", "--out", str(occupied)]

    result = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert result.returncode == 2
    assert result.stderr.startswith(f"cannot write the contracts to {occupied}: ")
    assert "Traceback" not in result.stderr


# Found by review: changes the checker must not call "no changes", and input it must refuse.


@pytest.mark.parametrize(
    ("file", "edit"),
    [
        ("requests/llm__invoke.schema.json", on_data("model", lambda s: s.update(maxLength=8))),
        ("requests/llm__invoke.schema.json", on_data("model", lambda s: s.update(pattern="^g"))),
        (
            "requests/model__polling__check.schema.json",
            lambda d: d["$defs"]["RequestCheckPolling"]["properties"]["plugin_state"].update(
                minProperties=3
            ),
        ),
        (
            "requests/llm__invoke.schema.json",
            lambda d: d["$defs"]["ToolChoice"]["then"]["required"].append("mode"),
        ),
        ("envelope.schema.json", lambda d: d["properties"]["code"].update(enum=[0])),
    ],
    ids=["maxLength", "pattern", "minProperties", "struct rule", "envelope"],
)
def test_changes_it_cannot_judge_are_reported_as_breaking_until_checked(
    contract_pair: tuple[Path, Path], file: str, edit: Edit
) -> None:
    old, new = contract_pair
    edit_schema(new, file, edit)

    changes = diff(old, new)

    assert changes and all(c.breaks for c in changes)
    assert any("not judged" in c.old_to_new.reason or c.old_to_new.breaks for c in changes)
    assert run_diff(old, new).returncode == 1


def test_a_changed_action_or_framing_breaks_both_ways(contract_pair: tuple[Path, Path]) -> None:
    old, new = contract_pair
    index = json.loads((new / "index.json").read_text())
    index["routes"][0].update(action="invoke_llm_v2", streamed=False)
    (new / "index.json").write_text(json.dumps(index))

    changes = diff(old, new)

    assert {c.path for c in changes} == {"action", "streamed"}
    assert all(c.old_to_new.breaks and c.new_to_old.breaks for c in changes)


def test_a_wider_type_breaks_only_the_direction_that_can_see_new_values(
    contract_pair: tuple[Path, Path],
) -> None:
    old, new = contract_pair

    def widen(document: dict[str, Any]) -> None:
        document["$defs"]["RequestInvokeRerank"]["properties"]["top_n"]["type"] = "number"

    edit_schema(new, "requests/rerank__invoke.schema.json", widen)

    (change,) = [c for c in diff(old, new) if c.what.startswith("type")]

    assert not change.old_to_new.breaks  # every integer is a number
    assert change.new_to_old.breaks


@pytest.mark.parametrize(
    ("index", "schema_text"),
    [
        ({"routes": [{"path": "llm/invoke"}]}, None),
        ({"routes": [{"path": None}, {"path": "x"}]}, None),
        ({"routes": {}}, None),
        (None, '"hello"'),
        (None, '{"properties": [1, 2]}'),
        (None, '{"properties": {"a": {"$ref": "#/$defs/Nope"}}}'),
        (
            {"routes": [{"path": "a", "request_schema": "/etc/passwd", "response_schema": "x"}]},
            None,
        ),
    ],
    ids=[
        "no schema",
        "null path",
        "routes not a list",
        "not an object",
        "bad properties",
        "dangling ref",
        "absolute path",
    ],
)
def test_unusable_contracts_exit_2(
    contract_pair: tuple[Path, Path], index: dict[str, Any] | None, schema_text: str | None
) -> None:
    old, new = contract_pair
    if index is not None:
        (new / "index.json").write_text(json.dumps(index))
    if schema_text is not None:
        (new / "requests" / "llm__invoke.schema.json").write_text(schema_text)

    result = run_diff(old, new)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "unusable contract" in result.stderr and "Traceback" not in result.stderr


# The other families -------------------------------------------------------------------------


def family_schema(direction: str, route: str) -> Draft202012Validator:
    return Draft202012Validator(
        contract_documents()[f"{direction}/{route.replace('/', '__')}.schema.json"]
    )


def test_the_family_request_schemas_say_what_go_enforces() -> None:
    def refused(route: str, edit: Edit) -> bool:
        body = json.loads((PAYLOADS / f"{route.replace('/', '__')}.json").read_text())
        edit(body)
        return not family_schema("requests", route).is_valid(body)

    refresh, browse = "oauth/refresh_credentials", "datasource/online_drive_browse_files"
    assert not refused(refresh, lambda b: b["data"].update(credentials={}))  # non-nil is enough
    assert refused(refresh, lambda b: b["data"].update(credentials=None))
    assert refused(browse, lambda b: b["data"]["request"].update(max_keys=0))  # int: non-zero
    assert not refused(browse, lambda b: b["data"]["request"].update(bucket="b"))
    assert refused("trigger/dispatch_event", lambda b: b["data"].update(raw_http_request=""))
    assert not refused("tool/invoke", lambda b: b["data"].pop("tool_parameters"))


def test_the_family_response_schemas_say_what_the_daemon_sends() -> None:
    chunk = family_schema("responses", "tool/invoke")
    dispatched = family_schema("responses", "trigger/dispatch_event")

    assert chunk.is_valid({"type": "blob_chunk", "message": {}, "meta": None})
    assert not chunk.is_valid({"type": "video", "message": {}, "meta": None})
    assert not chunk.is_valid({"type": "text", "message": {}})  # Go always writes meta
    assert dispatched.is_valid({"user_id": "", "events": None, "response": ""})  # no payload


def test_a_chunk_type_added_by_the_daemon_breaks_an_old_dify_only(
    contract_pair: tuple[Path, Path],
) -> None:
    old, new = contract_pair
    edit_schema(
        old,
        "responses/agent_strategy__invoke.schema.json",
        lambda d: d["properties"]["type"]["enum"].remove("retriever_resources"),
    )

    changes = diff(old, new)

    assert [(c.route, c.path) for c in changes] == [("agent_strategy/invoke", "type")]
    assert breaks(changes, "old_to_new") == []
    assert breaks(changes, "new_to_old") == changes


def test_a_nested_request_member_made_required_breaks_an_old_dify(
    contract_pair: tuple[Path, Path],
) -> None:
    old, new = contract_pair
    edit_schema(
        new,
        "requests/datasource__online_drive_browse_files.schema.json",
        lambda d: d["$defs"]["OnlineDriveBrowseFilesRequest"]["required"].append("prefix"),
    )

    changes = diff(old, new)

    assert [c.path for c in changes] == ["data.request.prefix"]
    assert breaks(changes, "old_to_new") == changes
    assert breaks(changes, "new_to_old") == []
