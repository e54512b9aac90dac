"""The contract as JSON Schema (draft 2020-12), one request and one response schema per route.

A request schema describes the bodies the daemon accepts and forwards intact: Go's `required`
as a required, non-empty member, the nullable ids, each route's `model_type` rule, and no key
the Go structs lack. A body that fails it is either refused with a 400 or silently changed
(the emulator names which). A response schema describes each item as the daemon re-encodes it
for Dify: every member present unless Go omits it when empty, decimals as strings.

Every property also carries `x-go`: its Go field name, type and `validate` tag.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from emulator import __version__
from emulator.contract.families.plugin_entities import (
    PARAMETER_AUTO_GENERATE_TYPES,
    TOOL_PARAMETER_FORMS,
    TOOL_PARAMETER_TYPES,
)
from emulator.contract.families.tool import RESPONSE_CHUNK_TYPES
from emulator.contract.gotypes import (
    Field,
    GoStruct,
    GoType,
    Interface,
    Map,
    Pointer,
    Raw,
    Scalar,
    Slice,
    Struct,
    flat_fields,
    go_type_name,
    struct_name,
)
from emulator.contract.model import (
    CONFIGURATE_METHODS,
    GO_SPACE,
    MODEL_PARAMETER_TYPES,
    MODEL_TYPES,
    MULTIMODAL_CONTENT_TYPES,
    PROMPT_MESSAGE_CONTENT_TYPES,
    PROMPT_MESSAGE_ROLES,
    PromptMessageContent,
)
from emulator.contract.routes import DISPATCH_PREFIX, ROUTES, Route
from emulator.contract.wrapper import wrapper_for

CONTRACT_VERSION = 1
DAEMON = {
    "repository": "langgenius/dify-plugin-daemon",
    "commit": "bdb5642a19009c944b78eca12f3d176801a4a8be",
    "describe": "0.6.10-6-gbdb5642a",
}
DRAFT = "https://json-schema.org/draft/2020-12/schema"
INT64 = {"minimum": -(2**63), "maximum": 2**63 - 1}
DECIMAL_TEXT = r"^-?[0-9]+(\.[0-9]+)?$"
ENUM_TAGS: dict[str, tuple[str, ...]] = {
    "model_type": MODEL_TYPES,
    "prompt_message_role": PROMPT_MESSAGE_ROLES,
    "prompt_message_content_type": PROMPT_MESSAGE_CONTENT_TYPES,
    "multimodal_content_type": MULTIMODAL_CONTENT_TYPES,
    "model_parameter_type": MODEL_PARAMETER_TYPES,
    "model_provider_configurate_method": CONFIGURATE_METHODS,
    "is_valid_tool_response_chunk_type": RESPONSE_CHUNK_TYPES,
    "is_valid_data_source_response_chunk_type": RESPONSE_CHUNK_TYPES,
    "tool_parameter_type": TOOL_PARAMETER_TYPES,
    "tool_parameter_form": TOOL_PARAMETER_FORMS,
    "parameter_auto_generate_type": PARAMETER_AUTO_GENERATE_TYPES,
}
LENGTH_TAGS = {"min": "minLength", "gte": "minLength", "max": "maxLength", "lte": "maxLength"}

Direction = Literal["request", "response"]


def contract_documents() -> dict[str, Any]:
    """Every file of the contract set, by its path relative to the contract folder."""
    documents: dict[str, Any] = {"index.json": index()}
    for route in ROUTES:
        documents[request_file(route)] = request_schema(route)
        documents[response_file(route)] = response_schema(route)
    documents["envelope.schema.json"] = envelope_schema()
    return documents


def write_contracts(folder: Path) -> list[Path]:
    """Writes the contract set into `folder`; returns the files written."""
    written = []
    for relative, document in contract_documents().items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(document))
        written.append(path)
    return written


def render(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def index() -> dict[str, Any]:
    return {
        "contract_version": CONTRACT_VERSION,
        "emulator_version": __version__,
        "daemon": DAEMON,
        "dispatch_prefix": DISPATCH_PREFIX,
        "envelope_schema": "envelope.schema.json",
        "routes": [
            {
                "path": route.path,
                "method": "POST",
                "access_type": route.access_type,
                "action": route.action,
                "streamed": route.streamed,
                "data_type": route.data_model.__name__,
                "response_type": struct_name(route.response_model),
                "request_schema": request_file(route),
                "response_schema": response_file(route),
            }
            for route in ROUTES
        ],
    }


def request_file(route: Route) -> str:
    return f"requests/{route.path.replace('/', '__')}.schema.json"


def response_file(route: Route) -> str:
    return f"responses/{route.path.replace('/', '__')}.schema.json"


def request_schema(route: Route) -> dict[str, Any]:
    title = f"{DISPATCH_PREFIX}{route.path} request body"
    return _document(wrapper_for(route.data_model), "request", title, request_file(route))


def response_schema(route: Route) -> dict[str, Any]:
    title = f"{DISPATCH_PREFIX}{route.path} item (the `data` of each success envelope)"
    return _document(route.response_model, "response", title, response_file(route))


def envelope_schema() -> dict[str, Any]:
    return {
        "$schema": DRAFT,
        "$id": _urn("envelope.schema.json"),
        "title": "Every daemon answer and stream item: success, or an error with nested JSON",
        "type": "object",
        "properties": {
            "code": {"type": "integer", "enum": [0, -400, -401, -403, -404, -500]},
            "message": {"type": "string", "description": "`success`, or an error as JSON text"},
            "data": {},
        },
        "required": ["code", "message", "data"],
        "additionalProperties": False,
    }


def _document(cls: type[GoStruct], direction: Direction, title: str, file: str) -> dict[str, Any]:
    definitions: dict[str, Any] = {}
    root = _SchemaBuilder(direction, definitions).struct_schema(cls)
    return {"$schema": DRAFT, "$id": _urn(file), "title": title, **root, "$defs": definitions}


def _urn(file: str) -> str:
    return f"urn:dify-plugin-daemon-emulator:contract:{CONTRACT_VERSION}:{file}"


class _SchemaBuilder:
    def __init__(self, direction: Direction, definitions: dict[str, Any]) -> None:
        self.direction = direction
        self.definitions = definitions

    def struct_schema(self, cls: type[GoStruct]) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in flat_fields(cls):
            properties[field.json_name] = self.field_schema(field)
            if self.is_required(field):
                required.append(field.json_name)
        if self.direction == "response":
            for name, value in getattr(cls, "go_marshal_adds", {}).items():
                properties[name] = {"const": value}
                required.append(name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        schema["additionalProperties"] = False
        schema.update(_struct_rules(cls))
        return schema

    def is_required(self, field: Field) -> bool:
        if self.direction == "response":
            return not field.omitempty
        if field.bound_from != "body":
            return False
        if isinstance(field.gotype, Struct):
            return bool(self.struct_schema(field.gotype.cls).get("required"))
        return "required" in field.tags

    def field_schema(self, field: Field) -> dict[str, Any]:
        if self.direction == "request" and field.bound_from == "path":
            schema: dict[str, Any] = {"type": ["string", "null"]}
        elif self.direction == "request" and field.bound_from == "nowhere":
            schema = {"type": ["string", "null"], "maxLength": 0}
        else:
            schema = self.type_schema(field.gotype, field.tags)
        go = {"name": field.go_name, "type": go_type_name(field.gotype)}
        if field.validate:
            go["validate"] = field.validate
        return {**schema, "x-go": go}

    def type_schema(self, gotype: GoType, tags: list[str]) -> dict[str, Any]:
        before_dive = tags[: tags.index("dive")] if "dive" in tags else tags
        after_dive = tags[tags.index("dive") + 1 :] if "dive" in tags else []
        required = "required" in before_dive
        match gotype:
            case Scalar():
                return self.scalar_schema(gotype, before_dive)
            case Pointer(elem=elem):
                # On a pointer, required only asks for non-nil: a pointer to 0 or "" passes.
                inner = self.type_schema(elem, [tag for tag in before_dive if tag != "required"])
                return _without_null(inner) if required else _or_null(inner)
            case Slice(elem=elem):
                items = self.type_schema(elem, after_dive)
                return {"type": "array" if required else ["array", "null"], "items": items}
            case Map():
                schema: dict[str, Any] = {"type": "object" if required else ["object", "null"]}
                for tag in before_dive:
                    name, _, parameter = tag.partition("=")
                    if name == "min":
                        schema["minProperties"] = int(parameter)
                    elif name == "max":
                        schema["maxProperties"] = int(parameter)
                return schema
            case Interface():
                if "prompt_message_content" in before_dive:
                    return self.prompt_content_schema()
                return {}
            case Raw():
                return {}
            case Struct(cls=cls):
                return {"$ref": self.definition(cls)}
        raise AssertionError(gotype)

    def scalar_schema(self, gotype: Scalar, tags: list[str]) -> dict[str, Any]:
        required = "required" in tags
        match gotype.kind:
            case "string":
                schema = self.string_schema(tags)
                if required:
                    return {**schema, "minLength": max(schema.get("minLength", 0), 1)}
                if self.direction == "response":
                    return schema
                if len(schema) == 1:
                    return {"type": ["string", "null"]}  # null becomes "", Go's absent string
                return {"anyOf": [schema, {"const": ""}, {"type": "null"}]}
            case "bool":
                return {"type": "boolean"}
            case "int":
                return {"type": "integer", **INT64, **({"not": {"const": 0}} if required else {})}
            case "float64":
                return {"type": "number", **({"not": {"const": 0}} if required else {})}
            case "decimal":
                if self.direction == "response":
                    return {"type": "string", "pattern": DECIMAL_TEXT}
                return {"type": ["number", "string"]}
        raise AssertionError(gotype)

    def string_schema(self, tags: list[str]) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        for tag in tags:
            name, _, parameter = tag.partition("=")
            if name == "eq":
                schema["const"] = parameter
            elif name == "oneof":
                schema["enum"] = parameter.split(" ")
            elif name in ENUM_TAGS:
                schema["enum"] = list(ENUM_TAGS[name])
            elif name in LENGTH_TAGS:
                schema[LENGTH_TAGS[name]] = int(parameter)
            elif name == "lt":
                schema["maxLength"] = int(parameter) - 1
            elif name == "gt":
                schema["minLength"] = int(parameter) + 1
        if "const" in schema:
            schema.pop("enum", None)  # eq= wins over the enum rules before it
        return schema

    def prompt_content_schema(self) -> dict[str, Any]:
        part = {"$ref": self.definition(PromptMessageContent)}
        return {"anyOf": [{"type": "string"}, {"type": "array", "items": part}]}

    def definition(self, cls: type[GoStruct]) -> str:
        name = struct_name(cls)
        if name not in self.definitions:
            self.definitions[name] = {}  # a placeholder first: structs may refer to themselves
            self.definitions[name] = self.struct_schema(cls)
        return f"#/$defs/{name}"


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, list):
        rest = [name for name in kind if name != "null"]
        return {**schema, "type": rest[0] if len(rest) == 1 else rest}
    return schema


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind:
        return schema
    if isinstance(kind, str) and "const" not in schema and "enum" not in schema:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _struct_rules(cls: type[GoStruct]) -> dict[str, Any]:
    """The daemon's struct-level validations, as if/then."""
    name = struct_name(cls)
    blank = f"^[{GO_SPACE}]*$"
    if name == "ToolChoice":
        return {
            "if": {"properties": {"mode": {"const": "tool"}}, "required": ["mode"]},
            "then": {"required": ["name"], "properties": {"name": {"not": {"pattern": blank}}}},
        }
    if name == "ModelPollingResult":
        return {
            "allOf": [
                _when_status(
                    "running",
                    {
                        "required": ["plugin_state"],
                        "properties": {"plugin_state": {"minProperties": 1}},
                    },
                ),
                _when_status(
                    "succeeded",
                    {"required": ["result"], "properties": {"result": {"not": {"type": "null"}}}},
                ),
                _when_status(
                    "failed",
                    {"required": ["error"], "properties": {"error": {"not": {"pattern": blank}}}},
                ),
            ]
        }
    return {}


def _when_status(status: str, then: dict[str, Any]) -> dict[str, Any]:
    return {
        "if": {"properties": {"status": {"const": status}}, "required": ["status"]},
        "then": then,
    }
