"""Hypothesis strategies for dispatch bodies, built from the emulator's contract models.

    from emulator.testing.strategies import payloads, mutations

    @given(payloads("llm/invoke", provider="echo", model="echo-1"))
    def test_my_client(body): ...

`payloads(route)` makes bodies the way Dify's client makes them, which the daemon takes as they
are (no 400, no silent change) and the plugin SDK's request class accepts: realistic ids,
prompt messages of every role and content type, tools, credentials, hex HTTP requests for the
OAuth and trigger routes, and `app_id` absent, null or a string. `mutations(route)` makes
targeted wrong bodies, each with what the daemon does about it. Fields come from the route's
Go struct layout, so a new field in the models shows up here without a change.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from emulator.contract.findings import WarningKind
from emulator.contract.gotypes import Field, GoStruct, Map, Scalar, Slice, Struct, flat_fields
from emulator.contract.model import MODEL_TYPES, MultimodalContent
from emulator.contract.routes import ROUTES_BY_PATH, Route

ABSENT: Any = object()
"""For `payloads(..., app_id=ABSENT)`: leave the key out, as a Dify without app_id does."""
VARY: Any = object()
"""For `payloads(..., app_id=VARY)`, the default: absent, null or an id."""

_WORDS = st.sampled_from(
    ["hello", "cost", "report", "weather", "summarise", "translate", "你好", "café", "ok", "data"]
)
_SENTENCES = st.lists(_WORDS, min_size=1, max_size=8).map(" ".join)
_IDS = st.uuids().map(str)
_NAMES = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
    lambda name: not name.startswith("_")
)
DIFY_MODEL_TYPES = ("llm", "text-embedding", "rerank", "speech2text", "moderation", "tts")
_MIME = {
    "image": "image/png",
    "audio": "audio/mpeg",
    "video": "video/mp4",
    "document": "application/pdf",
}


@dataclass(frozen=True)
class Mutation:
    """A wrong body and what the daemon does with it."""

    route: str
    body: dict[str, Any]
    description: str
    rejected_field: str | None = None
    """The Go field the daemon's 400 names, when it refuses the body."""
    warning: WarningKind | None = None
    """The warning the emulator names, when the daemon takes the body anyway."""


def payloads(
    route: str | Route, *, app_id: Any = VARY, **data: Any
) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies for `route` as Dify sends them; `data` fixes fields of `data` (provider="echo").

    `app_id`: VARY (absent, null or an id), ABSENT to leave it out, or a fixed value (None
    sends null).
    """
    route = _route(route)
    known = {field.json_name for field in flat_fields(route.data_model)}
    if unknown := sorted(set(data) - known):
        raise ValueError(f"{route.path} has no data field {', '.join(unknown)}")
    fixed = {name: st.just(value) for name, value in data.items()}
    return st.builds(
        _body,
        data=_struct_values(route, fixed),
        app_id=_app_ids() if app_id is VARY else st.just(app_id),
        user_id=st.one_of(st.just(ABSENT), _IDS),
        conversation_id=st.one_of(st.just(ABSENT), st.none(), _IDS),
        message_id=st.one_of(st.just(ABSENT), st.none(), _IDS),
    )


def mutations(route: str | Route, **data: Any) -> st.SearchStrategy[Mutation]:
    """A valid body with one targeted fault: refused with the daemon's 400, or taken with a
    named warning."""
    route = _route(route)
    return payloads(route, **data).flatmap(lambda body: _mutated(route, body))


# Bodies -----------------------------------------------------------------------------------


def _route(route: str | Route) -> Route:
    return ROUTES_BY_PATH[route] if isinstance(route, str) else route


def _app_ids() -> st.SearchStrategy[Any]:
    return st.one_of(st.just(ABSENT), st.none(), _IDS.map(lambda uuid: f"app-{uuid[:8]}"))


def _body(data: dict[str, Any], **wrapper: Any) -> dict[str, Any]:
    body = {name: value for name, value in wrapper.items() if value is not ABSENT}
    return {**body, "data": data}


def _struct_values(
    route: Route, fixed: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    return _fields_of(route.data_model, route, fixed)


def _fields_of(
    cls: type[GoStruct], route: Route, fixed: dict[str, st.SearchStrategy[Any]] | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    members = {field.json_name: _member(field, route) for field in flat_fields(cls)}
    members.update(fixed or {})
    return st.fixed_dictionaries(
        {name: strategy for name, strategy in members.items() if strategy is not None}
    )


def _member(field: Field, route: Route) -> st.SearchStrategy[Any] | None:
    """A realistic value for one field, or None to leave it out (as Dify does)."""
    name = field.json_name
    if name in _BY_NAME:
        return _BY_NAME[name](route)
    if name == "model_type":
        return _model_types(field, route)
    return _by_type(field, route)


def _model_types(field: Field, route: Route) -> st.SearchStrategy[str]:
    for tag in field.tags:
        if tag.startswith("eq="):
            return st.just(tag.removeprefix("eq="))
    if "model_type" in field.tags:
        # The daemon also takes text2img and the multimodal types; Dify sends these six
        # (and the SDK's enum refuses the multimodal ones).
        return st.sampled_from(DIFY_MODEL_TYPES)
    # The multimodal routes take any value; Dify sends the base type's.
    return st.just("rerank" if "rerank" in route.path else "text-embedding")


def _by_type(field: Field, route: Route) -> st.SearchStrategy[Any] | None:
    match field.gotype:
        case Scalar(kind="string"):
            return _SENTENCES if "required" in field.tags else None
        case Scalar(kind="int"):
            return st.integers(1, 10)
        case Scalar(kind="float64"):
            return st.floats(0.0, 1.0)
        case Slice(elem=Scalar(kind="string")):
            return st.lists(_SENTENCES, min_size=1, max_size=4)
        case Slice(elem=Struct(cls=cls)):
            return st.lists(_struct_of(cls, route), min_size=1, max_size=3)
        case Struct(cls=cls):
            return _struct_of(cls, route)
        case Map():
            return _maps() if "required" in field.tags else st.one_of(st.none(), _maps())
    return None


def _struct_of(cls: type[GoStruct], route: Route) -> st.SearchStrategy[dict[str, Any]]:
    if cls is MultimodalContent:
        return _multimodal_contents()
    return _fields_of(cls, route)


def _maps() -> st.SearchStrategy[dict[str, Any]]:
    values = st.one_of(_SENTENCES, st.integers(-(2**53), 2**53), st.booleans(), st.none())
    return st.dictionaries(_NAMES, values, max_size=4)


def _credentials(route: Route) -> st.SearchStrategy[dict[str, Any]]:
    values = st.one_of(_SENTENCES, st.integers(-(2**53), 2**53), st.booleans())
    return st.dictionaries(_NAMES, values, max_size=4)


def _prompt_messages(route: Route) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(_prompt_message(), min_size=1, max_size=5)


def _prompt_message() -> st.SearchStrategy[dict[str, Any]]:
    plain = st.builds(
        lambda role, content: {"role": role, "content": content, "name": None},
        st.sampled_from(["system", "user"]),
        _contents(),
    )
    # Dify's encoder always writes tool_calls for an assistant; the SDK refuses it null.
    assistant = st.builds(
        lambda content: {"role": "assistant", "content": content, "name": None, "tool_calls": []},
        _contents(),
    )
    tool = st.builds(
        lambda content, call: {"role": "tool", "content": content, "tool_call_id": call},
        _SENTENCES,
        _IDS.map(lambda uuid: f"call_{uuid[:8]}"),
    )
    return st.one_of(plain, assistant, tool)


def _contents() -> st.SearchStrategy[Any]:
    return st.one_of(_SENTENCES, st.lists(_content_part(), min_size=1, max_size=3))


def _content_part() -> st.SearchStrategy[dict[str, Any]]:
    text = _SENTENCES.map(lambda words: {"type": "text", "data": words})
    media = st.builds(_media_part, st.sampled_from(sorted(_MIME)), st.booleans())
    return st.one_of(text, media)


def _media_part(kind: str, by_url: bool) -> dict[str, Any]:
    part = {"type": kind, "format": _MIME[kind].split("/")[1], "mime_type": _MIME[kind]}
    source = {"url": f"https://files.example/{kind}"} if by_url else {"base64_data": "AAAA"}
    return {**part, **source, **({"detail": "low"} if kind == "image" else {})}


def _tools(route: Route) -> st.SearchStrategy[Any]:
    tool = st.builds(
        lambda name, words: {
            "name": name,
            "description": words,
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
        _NAMES,
        _SENTENCES,
    )
    return st.one_of(st.none(), st.lists(tool, min_size=1, max_size=3))


def _multimodal_contents() -> st.SearchStrategy[dict[str, str]]:
    text = _SENTENCES.map(lambda words: {"content": words, "content_type": "text"})
    image = st.just({"content": "https://files.example/cat.png", "content_type": "image"})
    return st.one_of(text, image)


def _hex_audio(route: Route) -> st.SearchStrategy[str]:
    return st.binary(min_size=1, max_size=64).map(bytes.hex)


def _urls(route: Route) -> st.SearchStrategy[str]:
    return _NAMES.map(lambda name: f"https://dify.example/{name}/callback")


def _hex_http_requests(route: Route) -> st.SearchStrategy[str]:
    """The raw HTTP request Dify received (an OAuth callback, a webhook), as hex."""
    request = st.builds(
        lambda name, body: (
            f"POST /{name} HTTP/1.1\r\nHost: dify.example\r\n"
            f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
        ),
        _NAMES,
        _SENTENCES,
    )
    return request.map(lambda text: text.encode().hex())


_BY_NAME: dict[str, Any] = {
    "provider": lambda route: _NAMES,
    "model": lambda route: _NAMES,
    "credentials": _credentials,
    "credential_type": lambda route: None,
    "model_parameters": lambda route: st.fixed_dictionaries(
        {}, optional={"temperature": st.integers(0, 100).map(lambda n: n / 100)}
    ),
    "prompt_messages": _prompt_messages,
    "tools": _tools,
    "tool_choice": lambda route: None,
    "stop": lambda route: st.one_of(st.none(), st.lists(_WORDS, max_size=3)),
    "json_schema": lambda route: st.none(),
    "stream": lambda route: st.just(False) if route.action == "start_polling" else st.booleans(),
    "input_type": lambda route: st.sampled_from(["document", "query"]),
    "tenant_id": lambda route: _IDS,
    "voice": lambda route: st.sampled_from(["alice", "bob"]),
    "language": lambda route: st.sampled_from(["en-US", "zh-Hans"]),
    "file": _hex_audio,
    "plugin_state": lambda route: st.dictionaries(_NAMES, _SENTENCES, min_size=1, max_size=3),
    "tool": lambda route: _NAMES,
    "datasource": lambda route: _NAMES,
    "event": lambda route: _NAMES,
    "agent_strategy_provider": lambda route: _NAMES,
    "agent_strategy": lambda route: _NAMES,
    "provider_action": lambda route: _NAMES,
    "parameter": lambda route: _NAMES,
    "redirect_uri": _urls,
    "endpoint": _urls,
    "raw_http_request": _hex_http_requests,
    "bucket": lambda route: st.one_of(st.none(), _NAMES),
    "prefix": lambda route: st.sampled_from(["", "docs/"]),
    "max_keys": lambda route: st.integers(1, 100),
    "id": lambda route: _NAMES,
}


# Mutations --------------------------------------------------------------------------------


def _mutated(route: Route, body: dict[str, Any]) -> st.SearchStrategy[Mutation]:
    required = [
        f
        for f in flat_fields(route.data_model)
        if "required" in f.tags and f.json_name in body["data"]
    ]
    options: list[st.SearchStrategy[Mutation]] = [
        st.builds(_unknown_key, st.just(route), st.just(body), _NAMES.map(lambda n: f"x_{n}")),
        st.builds(
            _non_string_app_id, st.just(route), st.just(body), st.sampled_from([0, 7, True, [], {}])
        ),
    ]
    if required:
        fields = st.sampled_from(required)
        options += [
            st.builds(_removed, st.just(route), st.just(body), fields),
            st.builds(_retyped, st.just(route), st.just(body), fields),
        ]
        strings = [f for f in required if f.gotype == Scalar("string")]
        if strings:
            options.append(
                st.builds(_emptied, st.just(route), st.just(body), st.sampled_from(strings))
            )
        lists = [f for f in required if isinstance(f.gotype, Slice | Map)]
        if lists:
            options.append(
                st.builds(_emptied_list, st.just(route), st.just(body), st.sampled_from(lists))
            )
    if _eq_model_type(route) is not None:
        options.append(st.builds(_wrong_model_type, st.just(route), st.just(body)))
    return st.one_of(options)


def _with_data(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**body, "data": {**body["data"], **changes}}


def _unknown_key(route: Route, body: dict[str, Any], key: str) -> Mutation:
    return Mutation(
        route.path,
        _with_data(body, **{key: 1}),
        f"unknown key {key}",
        warning=WarningKind.UNKNOWN_KEY,
    )


def _non_string_app_id(route: Route, body: dict[str, Any], value: Any) -> Mutation:
    return Mutation(
        route.path, {**body, "app_id": value}, f"app_id {value!r}", warning=WarningKind.ID_COERCED
    )


def _removed(route: Route, body: dict[str, Any], field: Field) -> Mutation:
    data = {name: value for name, value in body["data"].items() if name != field.json_name}
    return Mutation(
        route.path, {**body, "data": data}, f"{field.json_name} removed", _rejected(field)
    )


def _retyped(route: Route, body: dict[str, Any], field: Field) -> Mutation:
    wrong = 12345 if field.gotype == Scalar("string") else "not-a-list"
    if isinstance(field.gotype, Struct):
        wrong = 12345
    return Mutation(
        route.path,
        _with_data(body, **{field.json_name: wrong}),
        f"{field.json_name} retyped",
        _rejected(field),
    )


def _rejected(field: Field) -> str:
    """The Go field a zero value of `field` fails on: a struct skips `required` and fails on
    its own first required member instead."""
    if isinstance(field.gotype, Struct):
        inner = next(f for f in flat_fields(field.gotype.cls) if "required" in f.tags)
        return f"{field.go_name}.{inner.go_name}"
    return field.go_name


def _emptied(route: Route, body: dict[str, Any], field: Field) -> Mutation:
    return Mutation(
        route.path,
        _with_data(body, **{field.json_name: ""}),
        f"{field.json_name} emptied",
        field.go_name,
    )


def _emptied_list(route: Route, body: dict[str, Any], field: Field) -> Mutation:
    # Go's required only asks a list or map to be non-nil: [] and {} pass, nothing is changed.
    empty: Any = {} if isinstance(field.gotype, Map) else []
    return Mutation(
        route.path, _with_data(body, **{field.json_name: empty}), f"{field.json_name} emptied"
    )


def _wrong_model_type(route: Route, body: dict[str, Any]) -> Mutation:
    right = _eq_model_type(route)
    wrong = next(model_type for model_type in MODEL_TYPES if model_type != right)
    return Mutation(
        route.path, _with_data(body, model_type=wrong), f"model_type {wrong}", "ModelType"
    )


def _eq_model_type(route: Route) -> str | None:
    for field in flat_fields(route.data_model):
        for tag in field.tags if field.json_name == "model_type" else []:
            if tag.startswith("eq="):
                return tag.removeprefix("eq=")
    return None
