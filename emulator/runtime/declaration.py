"""Read a plugin directory into the daemon's `PluginDeclaration`, as its package decoder does.

This follows pkg/plugin_packager/decoder (PluginDecoderHelper.Manifest) and the YAML hooks of
pkg/entities/plugin_entities, not the SDK: `manifest.yaml`, then every provider file the
manifest lists under `plugins:` (models, tools, agent_strategies, datasources, triggers,
endpoints) with the tool, strategy, datasource, event and endpoint files each provider lists,
model files matched by the provider's `models.<type>.predefined` globs over the directory's
files, and `_position.yaml` files. Then what installation adds: the declaration's defaults
(FillInDefaultValues) and icons renamed to the daemon's asset ids, `sha256(content + name)` in
hex plus the file's extension (media_transport.MediaBucket.Upload).

YAML is read as gopkg.in/yaml.v3 reads it into Go structs: keys match exactly, a key missing
or null leaves Go's zero value, a string field takes any scalar's text, and a value of the
wrong shape fails the whole file. Plain scalars are resolved as yaml.v3 resolves them
(emulator.contract.goyaml), not by PyYAML's YAML 1.1 rules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from emulator.contract import declarations as d
from emulator.contract.gojson import GoMap
from emulator.contract.gotypes import (
    Embedded,
    GoStruct,
    GoType,
    Interface,
    Map,
    Pointer,
    Scalar,
    Slice,
    Struct,
    StructValue,
    layout,
    zero_value,
)
from emulator.contract.goyaml import PLAIN, GoYamlLoader, resolve
from emulator.contract.responses import ModelParameterRule

__all__ = ["DeclarationError", "PluginPackage", "read_package"]

_YAML11_BOOLS = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "off", "Off", "OFF"), False),
}
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d\d?)-(\d\d?)"
    r"(?:(?:[Tt]|[ \t]+)(\d\d?):(\d\d):(\d\d)(?:\.(\d+))?(?:[ \t]*(Z|[-+]\d\d?(?::?\d\d)?))?)?$"
)
_MODEL_TYPES_WITH_FILES = ("llm", "text_embedding", "tts", "speech2text", "moderation", "rerank")


class DeclarationError(Exception):
    """The daemon could not decode this plugin; the message names the file and the cause."""


@dataclass(frozen=True)
class PluginPackage:
    """What the daemon holds for an installed plugin: its declaration and its assets."""

    declaration: StructValue
    assets: dict[str, bytes]
    """Asset id (as the declaration's icons name them) -> file content."""

    @property
    def category(self) -> str:
        """PluginDeclaration.Category: the first provider kind present, else "extension"."""
        value = self.declaration
        plugins = value["plugins"]
        for field, listed, category in (
            ("tool", "tools", "tool"),
            ("model", "models", "model"),
            ("datasource", "datasources", "datasource"),
            ("agent_strategy", "agent_strategies", "agent-strategy"),
            ("trigger", "triggers", "trigger"),
        ):
            if value[field] is not None or plugins[listed]:
                return category
        return "extension"


def read_package(directory: Path) -> PluginPackage:
    """The declaration the daemon would store for the plugin in `directory`."""
    reader = _PackageReader(Path(directory))
    declaration = reader.manifest()
    _fill_in_default_values(declaration)
    assets = _read_assets(reader.root)
    _remap_assets(declaration, assets)
    by_id = {_asset_id(name, content): content for name, content in assets.items()}
    return PluginPackage(declaration, by_id)


# The package decoder ----------------------------------------------------------------------


_LISTED_PROVIDERS: tuple[
    tuple[str, str, tuple[type[GoStruct], str, str, type[GoStruct]] | None], ...
] = (
    # In the decoder's order: manifest key, declaration key, and the provider's struct, its
    # name in errors, the member listing its items, and the items' struct (models differ).
    ("tools", "tool", (d.ToolProviderDeclaration, "tool", "tools", d.ToolDeclaration)),
    (
        "endpoints",
        "endpoint",
        (d.EndpointProviderDeclaration, "endpoint", "endpoints", d.EndpointDeclaration),
    ),
    ("models", "model", None),
    (
        "agent_strategies",
        "agent_strategy",
        (
            d.AgentStrategyProviderDeclaration,
            "agent strategy",
            "strategies",
            d.AgentStrategyDeclaration,
        ),
    ),
    (
        "datasources",
        "datasource",
        (d.DatasourceProviderDeclaration, "datasource", "datasources", d.DatasourceDeclaration),
    ),
    (
        "triggers",
        "trigger",
        (d.TriggerProviderDeclaration, "trigger", "events", d.EventDeclaration),
    ),
)


class _PackageReader:
    def __init__(self, root: Path) -> None:
        self.root = root

    def node(self, relative: str, purpose: str) -> yaml.Node | None:
        path = self.root / relative
        try:
            text = path.read_bytes()
        except OSError as error:
            raise DeclarationError(f"{error}\nfailed to read {purpose} file: {relative}") from None
        try:
            return yaml.compose(text, Loader=GoYamlLoader)
        except yaml.YAMLError as error:
            raise DeclarationError(f"yaml: {relative}: {error}") from None

    def decode(self, cls: type[GoStruct], relative: str, purpose: str) -> StructValue:
        node = self.node(relative, purpose)
        try:
            return decode_struct(cls, node)
        except DeclarationError as error:
            message = f"{error}\nfailed to unmarshal {purpose} file: {relative}"
            raise DeclarationError(message) from None

    def manifest(self) -> StructValue:
        declaration = self.decode(d.PluginDeclaration, "manifest.yaml", "manifest")
        plugins = declaration["plugins"]
        for listed_as, declared_as, shape in _LISTED_PROVIDERS:
            for file in plugins[listed_as] or []:
                provider = (
                    self._model_provider(file) if shape is None else self._provider(file, *shape)
                )
                declaration[declared_as] = provider
        return declaration

    def _provider(
        self,
        file: str,
        cls: type[GoStruct],
        purpose: str,
        items: str,
        item_cls: type[GoStruct],
    ) -> StructValue:
        provider = self.decode(cls, file, purpose)
        for item_file in provider.files:  # type: ignore[attr-defined]
            item = self.decode(item_cls, item_file, purpose)
            provider[items] = [*(provider[items] or []), item]
        return provider

    def _model_provider(self, file: str) -> StructValue:
        provider = self.decode(d.ModelProviderDeclaration, file, "model")
        files: _ModelFiles = provider.files  # type: ignore[attr-defined]
        if files.positions is not None:
            position = zero_value(Struct(d.ModelPosition))
            for model_type, position_file in files.positions.items():
                node = self.node(position_file, f"{model_type} position")
                position[model_type] = decode(Slice(Scalar("string")), node, position_file) or []
            provider["position"] = position
        models = list(provider["models"] or [])
        for relative in self._files():
            if relative.endswith("_position.yaml"):
                continue
            for pattern in files.models:
                if _go_path_match(pattern, relative):
                    models.append(self.decode(d.ModelDeclaration, relative, "model"))
        provider["models"] = models
        return provider

    def _files(self) -> list[str]:
        """Every file under the root, relative and in filepath.WalkDir's lexical order."""
        found: list[str] = []

        def walk(directory: Path) -> None:
            for entry in sorted(directory.iterdir(), key=lambda path: path.name):
                if entry.is_dir():
                    walk(entry)
                else:
                    found.append(entry.relative_to(self.root).as_posix())

        walk(self.root)
        return found


def _go_path_match(pattern: str, name: str) -> bool:
    """filepath.Match: `*` and `?` never cross a `/`."""
    regex = "".join(
        "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, name) is not None


@dataclass
class _ModelFiles:
    models: list[str]
    positions: dict[str, str] | None


# yaml.v3 into Go structs ------------------------------------------------------------------


def decode_struct(cls: type[GoStruct], node: yaml.Node | None) -> StructValue:
    value = decode(Struct(cls), node, cls.__name__)
    assert isinstance(value, StructValue)
    return value


def decode(gotype: GoType, node: yaml.Node | None, where: str) -> Any:
    """yaml.v3's decoding of `node` into a Go value of `gotype` (zero value for null)."""
    if node is None or (isinstance(node, yaml.ScalarNode) and _tag(node) == "null"):
        return zero_value(gotype)
    match gotype:
        case Scalar(kind=kind):
            return _scalar(kind, node)
        case Pointer(elem=elem):
            return decode(elem, node, where)
        case Slice(elem=elem):
            if not isinstance(node, yaml.SequenceNode):
                raise _mismatch(node, "[]" + _kind_name(elem))
            return [decode(elem, item, where) for item in node.value]
        case Map():
            if not isinstance(node, yaml.MappingNode):
                raise _mismatch(node, "map[string]interface {}")
            return _any(node)
        case Interface():
            return _any(node)
        case Struct(cls=cls):
            special = _STRUCT_HOOKS.get(cls)
            if special is not None:
                return special(node)
            return _plain_struct(cls, node)
    raise AssertionError(gotype)


def _plain_struct(cls: type[GoStruct], node: yaml.Node) -> StructValue:
    if not isinstance(node, yaml.MappingNode):
        raise _mismatch(node, cls.__name__)
    value: StructValue = zero_value(Struct(cls))
    members = _mapping(node)
    _fill(cls, value, members)
    after = _AFTER_DECODE.get(cls)
    if after is not None:
        after(value)
    return value


def _fill(cls: type[GoStruct], value: StructValue, members: dict[str, yaml.Node]) -> None:
    for member in layout(cls):
        if isinstance(member, Embedded):
            _fill(member.struct, value, members)  # `yaml:",inline"`
        elif member.json_name in members:
            decoded = decode(member.gotype, members[member.json_name], member.json_name)
            if cls is d.PluginDeclarationWithoutAdvancedFields and member.json_name == "created_at":
                decoded = _go_time(members["created_at"])
            value[member.json_name] = decoded


def _mapping(node: yaml.MappingNode) -> dict[str, yaml.Node]:
    return {key.value: item for key, item in node.value if isinstance(key, yaml.ScalarNode)}


def _scalar(kind: str, node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise _mismatch(node, kind)
    if kind == "string":
        return node.value
    if kind == "decimal":
        try:
            return Decimal(node.value)
        except InvalidOperation:
            raise _mismatch(node, "decimal.Decimal") from None
    constructed = _construct(node)
    if kind == "bool" and isinstance(constructed, bool):
        return constructed
    if kind == "bool" and node.tag == PLAIN and node.value in _YAML11_BOOLS:
        return _YAML11_BOOLS[node.value]  # yaml.v3 takes these into a bool field only
    if kind == "int" and isinstance(constructed, int) and not isinstance(constructed, bool):
        return constructed
    if kind == "int" and isinstance(constructed, float) and abs(constructed) < 2**63:
        return int(constructed)  # yaml.v3 truncates a float that fits an int
    is_number = isinstance(constructed, int | float) and not isinstance(constructed, bool)
    if kind == "float64" and is_number:
        return float(constructed)
    raise _mismatch(node, kind)


def _any(node: yaml.Node) -> Any:
    """What yaml.v3 puts in an `any`: maps with string keys (sorted when Go writes them)."""
    if isinstance(node, yaml.MappingNode):
        return GoMap({key.value: _any(item) for key, item in node.value})
    if isinstance(node, yaml.SequenceNode):
        return [_any(item) for item in node.value]
    constructed = _construct(node) if isinstance(node, yaml.ScalarNode) else None
    if isinstance(constructed, bool | int | float | str) or constructed is None:
        return constructed
    return node.value  # binary: its text


def _construct(node: yaml.ScalarNode) -> Any:
    tag, value = resolve(node)
    return node.value if tag == "timestamp" else value


def _tag(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return resolve(node)[0]
    return str(node.tag).rsplit(":", 1)[-1]


def _go_time(node: yaml.Node) -> str:
    """A YAML timestamp as time.Time's MarshalJSON writes it (RFC 3339, nanoseconds trimmed)."""
    text = node.value if isinstance(node, yaml.ScalarNode) else ""
    match = _TIMESTAMP.match(text)
    if match is None:
        raise _mismatch(node, "time.Time")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0))
    clock = moment.strftime("%Y-%m-%dT%H:%M:") + f"{int(second or 0):02d}"
    fraction = (fraction or "")[:9].rstrip("0")
    return clock + (f".{fraction}" if fraction else "") + _zone(zone)


def _zone(zone: str | None) -> str:
    if zone is None or zone == "Z":
        return "Z"
    sign, digits = zone[0], zone[1:].replace(":", "")
    hours, minutes = int(digits[:-2] or digits), int(digits[-2:]) if len(digits) > 2 else 0
    return "Z" if hours == minutes == 0 else f"{sign}{hours:02d}:{minutes:02d}"


def _mismatch(node: yaml.Node, target: str) -> DeclarationError:
    tag = _tag(node)
    shown = f" `{node.value}`" if isinstance(node, yaml.ScalarNode) else ""
    line = node.start_mark.line + 1
    return DeclarationError(
        f"yaml: unmarshal errors:\n  line {line}: cannot unmarshal !!{tag}{shown} into {target}"
    )


def _kind_name(gotype: GoType) -> str:
    return gotype.cls.__name__ if isinstance(gotype, Struct) else getattr(gotype, "kind", "")


# The declarations' own UnmarshalYAML ------------------------------------------------------


def _parameter_rule(rule: StructValue) -> None:
    """ModelParameterRule.TransformTemplate."""
    if rule["label"] is None or rule["label"]["en_US"] == "":
        label = zero_value(Struct(d.I18nObject))
        label["en_US"] = rule["name"]
        rule["label"] = label
    template_name = rule["use_template"]
    if template_name:
        template = PARAMETER_RULE_TEMPLATES.get(template_name)
        if template is None:
            raise DeclarationError(f"use_template {template_name} not found")
        for field, default in template.items():
            if rule[field] is None:
                rule[field] = list(default) if isinstance(default, tuple) else default
    if rule["options"] is None:
        rule["options"] = []


PARAMETER_RULE_TEMPLATES: dict[str, dict[str, Any]] = {
    "temperature": {"type": "float", "default": 0.0, "min": 0.0, "max": 1.0, "precision": 2},
    "top_p": {"type": "float", "default": 1.0, "min": 0.0, "max": 1.0, "precision": 2},
    "top_k": {"type": "int", "default": 50, "min": 1.0, "max": 100.0, "precision": 0},
    "presence_penalty": {"type": "float", "default": 0.0, "min": 0.0, "max": 1.0, "precision": 2},
    "frequency_penalty": {"type": "float", "default": 0.0, "min": 0.0, "max": 1.0, "precision": 2},
    "max_tokens": {"type": "int", "default": 64, "min": 1.0, "max": 2048.0, "precision": 0},
    "response_format": {"type": "string", "options": ("JSON", "XML")},
    "json_schema": {"type": "string"},
}
"""The daemon's PARAMETER_RULE_TEMPLATE, without its labels (TransformTemplate never uses
them: a rule's label is its name by then) and without its help texts."""


def _model_declaration(model: StructValue) -> None:
    if model["fetch_from"] == "":
        model["fetch_from"] = "predefined-model"
    if model["parameter_rules"] is None:
        model["parameter_rules"] = []


def _empty_lists(*fields: str) -> Callable[[StructValue], None]:
    def fill(value: StructValue) -> None:
        for field in fields:
            if value[field] is None:
                value[field] = []

    return fill


_AFTER_DECODE: dict[type[GoStruct], Callable[[StructValue], None]] = {
    ModelParameterRule: _parameter_rule,
    d.ModelDeclaration: _model_declaration,
    d.ModelProviderFormOption: _empty_lists("show_on"),
    d.ModelProviderCredentialFormSchema: _empty_lists("show_on", "options"),
}


class _ProviderValue(StructValue):
    """A provider as decoded, with the file names its YAML listed (Go's `yaml:"-"` fields)."""

    __slots__ = ("files",)

    def __init__(self, value: StructValue, files: Any) -> None:
        super().__init__(value.cls, value)
        self.files = files


def _model_provider(node: yaml.Node) -> StructValue:
    provider = _plain_struct_without(d.ModelProviderDeclaration, node, "models")
    members = _mapping(node) if isinstance(node, yaml.MappingNode) else {}
    if "model_declarations" in members:
        provider["models"] = decode(
            Slice(Struct(d.ModelDeclaration)), members["model_declarations"], "models"
        )
    for schema in ("model_credential_schema", "provider_credential_schema"):
        if provider[schema] is not None and provider[schema]["credential_form_schemas"] is None:
            provider[schema]["credential_form_schemas"] = []
    files = _ModelFiles(models=[], positions=None)
    models = members.get("models")
    if isinstance(models, yaml.MappingNode):
        files.positions = {}
        for key, by_type in models.value:
            if key.value not in _MODEL_TYPES_WITH_FILES or not isinstance(
                by_type, yaml.MappingNode
            ):
                continue
            for name, item in by_type.value:
                if name.value == "position":
                    files.positions[key.value] = item.value
                elif name.value == "predefined" and isinstance(item, yaml.SequenceNode):
                    files.models.extend(entry.value for entry in item.value)
        if not files.positions:
            # Go keeps an empty, non-nil map: position is then written as {}.
            files.positions = {}
    elif isinstance(models, yaml.SequenceNode):
        provider["models"] = decode(Slice(Struct(d.ModelDeclaration)), models, "models")
    if provider["models"] is None:
        provider["models"] = []
    return _ProviderValue(provider, files)


def _plain_struct_without(cls: type[GoStruct], node: yaml.Node, *skipped: str) -> StructValue:
    if not isinstance(node, yaml.MappingNode):
        raise _mismatch(node, cls.__name__)
    value: StructValue = zero_value(Struct(cls))
    members = {k: v for k, v in _mapping(node).items() if k not in skipped}
    _fill(cls, value, members)
    return value


def _files_and_items(
    node: yaml.Node | None, item_cls: type[GoStruct]
) -> tuple[list[str], list[StructValue] | None]:
    """A provider's list of item files (scalars) and inline item declarations (mappings)."""
    files: list[str] = []
    items: list[StructValue] | None = None
    if isinstance(node, yaml.SequenceNode):
        for entry in node.value:
            if isinstance(entry, yaml.ScalarNode):
                files.append(entry.value)
            elif isinstance(entry, yaml.MappingNode):
                items = [*(items or []), decode_struct(item_cls, entry)]
    return files, items


def _provider_configs(node: yaml.Node | None) -> list[StructValue]:
    """A credentials schema as a list, or as a map whose keys become each entry's name."""
    if isinstance(node, yaml.MappingNode):
        configs = []
        for key, item in node.value:
            if isinstance(item, yaml.MappingNode):
                config = decode_struct(d.ProviderConfig, item)
                config["name"] = key.value
                configs.append(config)
        return configs
    return decode(Slice(Struct(d.ProviderConfig)), node, "credentials_schema") or []


def _credentials_node(members: dict[str, yaml.Node]) -> yaml.Node | None:
    """credentials_for_provider stands in for a missing or empty credentials_schema."""
    schema = members.get("credentials_schema")
    empty_scalar = isinstance(schema, yaml.ScalarNode) and schema.value == ""
    no_content = not isinstance(schema, yaml.MappingNode | yaml.SequenceNode) or not schema.value
    if schema is None or empty_scalar or no_content:
        return members.get("credentials_for_provider")
    return schema


def _identity(cls: type[GoStruct], members: dict[str, yaml.Node]) -> StructValue:
    identity = decode_struct(cls, members.get("identity"))
    if identity["tags"] is None:
        identity["tags"] = []
    return identity


def _tool_provider(node: yaml.Node) -> StructValue:
    members = _members(node, d.ToolProviderDeclaration)
    provider: StructValue = zero_value(Struct(d.ToolProviderDeclaration))
    provider["identity"] = _identity(d.ToolProviderIdentity, members)
    provider["oauth_schema"] = decode(
        Pointer(Struct(d.OAuthSchema)), members.get("oauth_schema"), "oauth_schema"
    )
    provider["credentials_schema"] = _provider_configs(_credentials_node(members))
    files, tools = _files_and_items(members.get("tools"), d.ToolDeclaration)
    provider["tools"] = tools or []
    return _ProviderValue(provider, files)


def _agent_provider(node: yaml.Node) -> StructValue:
    members = _members(node, d.AgentStrategyProviderDeclaration)
    provider: StructValue = zero_value(Struct(d.AgentStrategyProviderDeclaration))
    provider["identity"] = _identity(d.AgentStrategyProviderIdentity, members)
    files, strategies = _files_and_items(members.get("strategies"), d.AgentStrategyDeclaration)
    provider["strategies"] = strategies or []
    return _ProviderValue(provider, files)


def _datasource_provider(node: yaml.Node) -> StructValue:
    members = _members(node, d.DatasourceProviderDeclaration)
    provider: StructValue = zero_value(Struct(d.DatasourceProviderDeclaration))
    provider["identity"] = _identity(d.DatasourceProviderIdentity, members)
    provider["oauth_schema"] = decode(
        Pointer(Struct(d.OAuthSchema)), members.get("oauth_schema"), "oauth_schema"
    )
    provider["provider_type"] = decode(
        Scalar("string"), members.get("provider_type"), "provider_type"
    )
    provider["credentials_schema"] = _provider_configs(members.get("credentials_schema"))
    files, datasources = _files_and_items(members.get("datasources"), d.DatasourceDeclaration)
    provider["datasources"] = datasources or []
    return _ProviderValue(provider, files)


def _trigger_provider(node: yaml.Node) -> StructValue:
    members = _members(node, d.TriggerProviderDeclaration)
    provider: StructValue = zero_value(Struct(d.TriggerProviderDeclaration))
    provider["identity"] = _identity(d.TriggerProviderIdentity, members)
    provider["subscription_schema"] = _provider_configs(members.get("subscription_schema"))
    constructor_node = members.get("subscription_constructor")
    if isinstance(constructor_node, yaml.MappingNode):
        parts = _mapping(constructor_node)
        constructor: StructValue = zero_value(Struct(d.SubscriptionConstructor))
        parameters = decode(Slice(Struct(d.EventParameter)), parts.get("parameters"), "parameters")
        constructor["parameters"] = parameters or []
        constructor["credentials_schema"] = _provider_configs(parts.get("credentials_schema"))
        if "oauth_schema" in parts:
            constructor["oauth_schema"] = decode_struct(d.OAuthSchema, parts["oauth_schema"])
        provider["subscription_constructor"] = constructor
    files, events = _files_and_items(members.get("events"), d.EventDeclaration)
    provider["events"] = events or []
    return _ProviderValue(provider, files)


def _endpoint_provider(node: yaml.Node) -> StructValue:
    members = _members(node, d.EndpointProviderDeclaration)
    provider: StructValue = zero_value(Struct(d.EndpointProviderDeclaration))
    provider["settings"] = decode(
        Slice(Struct(d.ProviderConfig)), members.get("settings"), "settings"
    )
    files: list[str] = []
    endpoints = members.get("endpoints")
    if isinstance(endpoints, yaml.SequenceNode):
        for entry in endpoints.value:
            if isinstance(entry, yaml.ScalarNode):
                files.append(entry.value)
                continue
            try:
                declaration = decode_struct(d.EndpointDeclaration, entry)
            except DeclarationError:
                break  # the daemon's hook returns nil here: the rest is dropped silently
            provider["endpoints"] = [*(provider["endpoints"] or []), declaration]
    return _ProviderValue(provider, files)


def _members(node: yaml.Node, cls: type[GoStruct]) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise _mismatch(node, cls.__name__)
    return _mapping(node)


_STRUCT_HOOKS: dict[type[GoStruct], Callable[[yaml.Node], StructValue]] = {
    d.ModelProviderDeclaration: _model_provider,
    d.ToolProviderDeclaration: _tool_provider,
    d.AgentStrategyProviderDeclaration: _agent_provider,
    d.DatasourceProviderDeclaration: _datasource_provider,
    d.TriggerProviderDeclaration: _trigger_provider,
    d.EndpointProviderDeclaration: _endpoint_provider,
}


# Installation: defaults and assets --------------------------------------------------------


def _fill_in_default_values(declaration: StructValue) -> None:
    """PluginDeclaration.FillInDefaultValues."""
    if declaration["tags"] is None:
        declaration["tags"] = []
    for kind in ("tool", "trigger"):
        provider = declaration[kind]
        if provider is None:
            continue
        identity = provider["identity"]
        if identity["description"]["en_US"] == "":
            identity["description"] = StructValue(d.I18nObject, dict(declaration["description"]))
        if not identity["tags"]:
            identity["tags"] = list(declaration["tags"])
    model = declaration["model"]
    if model is not None and model["description"] is None:
        model["description"] = StructValue(d.I18nObject, dict(declaration["description"]))


def _read_assets(root: Path) -> dict[str, bytes]:
    assets_root = root / "_assets"
    if not assets_root.is_dir():
        return {}
    return {
        path.relative_to(assets_root).as_posix(): path.read_bytes()
        for path in sorted(assets_root.rglob("*"))
        if path.is_file()
    }


def _asset_id(name: str, content: bytes) -> str:
    return hashlib.sha256(content + name.encode()).hexdigest() + PurePosixPath(name).suffix


def _remap_assets(declaration: StructValue, assets: dict[str, bytes]) -> None:
    """MediaBucket.RemapAssets: every icon names an asset id; a missing file fails the install."""

    def remap(name: str, what: str) -> str:
        if name not in assets:
            raise DeclarationError(f"file not found: {name}\nfailed to remap {what}")
        return _asset_id(name, assets[name])

    model = declaration["model"]
    if model is not None:
        for field in ("icon_small", "icon_large", "icon_small_dark", "icon_large_dark"):
            icon = model[field]
            for language in ("en_US", "zh_Hans", "ja_JP", "pt_BR") if icon else ():
                if icon[language]:
                    icon[language] = remap(icon[language], f"model {field} {language}")
    for kind in ("tool", "agent_strategy", "trigger"):
        provider = declaration[kind]
        if provider is not None:
            for field in ("icon", "icon_dark"):
                if provider["identity"][field]:
                    name = provider["identity"][field]
                    provider["identity"][field] = remap(name, f"{kind} {field}")
    datasource = declaration["datasource"]
    if datasource is not None:
        if datasource["identity"]["icon"]:
            datasource["identity"]["icon"] = remap(datasource["identity"]["icon"], "datasource")
        for item in datasource["datasources"] or []:
            if item["identity"]["icon"]:
                item["identity"]["icon"] = remap(item["identity"]["icon"], "datasource step")
    for field in ("icon", "icon_dark"):
        if declaration[field]:
            declaration[field] = remap(declaration[field], f"plugin {field}")


def now_in_go_format(moment: datetime | None = None) -> str:
    """A time as Go's time.Time MarshalJSON writes it: RFC 3339, fraction trimmed, UTC as Z."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return text + (f".{fraction}" if fraction else "") + "Z"
