"""A plugin's declaration as the daemon stores and returns it (pkg/entities/plugin_entities).

The management routes answer with `json.Marshal` of these structs: `PluginDeclaration` with its
model, tool, agent-strategy, datasource, trigger and endpoint providers. Field names, order,
`omitempty` and nil-versus-empty follow the Go source, so the wire shape is the daemon's.

Subset kept: every field the daemon writes is here; the validator tags are not (the daemon
validates a package when it is uploaded, which the emulator never does), and the built-in
parameter templates (`use_template`) carry their type, default, bounds and options but not
their translated help texts.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from emulator.contract.gojson import encode, encode_members, encode_string, is_empty
from emulator.contract.gotypes import Go, GoStruct, flat_fields
from emulator.contract.responses import I18nObject, ModelDeclaration

__all__ = [
    "AgentStrategyProviderDeclaration",
    "DatasourceProviderDeclaration",
    "EndpointProviderDeclaration",
    "I18nObject",
    "ModelDeclaration",
    "ModelProviderDeclaration",
    "PluginDeclaration",
    "PluginMeta",
    "ToolProviderDeclaration",
    "TriggerProviderDeclaration",
]

OMIT = Go(omitempty=True)


def _marshal_with_empty_lists(cls: type[GoStruct], value: dict[str, Any]) -> str:
    """The providers' MarshalJSON: the listed nil slices are written as []."""
    nil_as_empty: tuple[str, ...] = getattr(cls, "nil_as_empty", ())
    filled = {**value, **{name: [] for name in nil_as_empty if value[name] is None}}
    return "{" + ",".join(encode_members(cls, filled)) + "}"


def _omitting_as_go(cls: type[GoStruct], value: dict[str, Any]) -> str:
    """json.Marshal's omitempty, where a `pointer_slices` member is a *[]T: left out only
    when nil, so a pointer to an empty list is still written."""
    pointers: tuple[str, ...] = getattr(cls, "pointer_slices", ())
    members = []
    for field in flat_fields(cls):
        item = value[field.json_name]
        by_nil = field.json_name in pointers
        if field.omitempty and (item is None if by_nil else is_empty(item, field.gotype)):
            continue
        members.append(f"{encode_string(field.json_name)}:{encode(item, field.gotype)}")
    return "{" + ",".join(members) + "}"


# config.go, constant.go, oauth.go ---------------------------------------------------------


class ConfigOption(GoStruct):
    value: str = ""
    label: I18nObject = I18nObject()


class ProviderConfig(GoStruct):
    name: str = ""
    type: str = ""
    scope: str | None = None
    required: bool = False
    default: Any = None
    options: list[ConfigOption] | None = None
    multiple: bool = False
    label: I18nObject = I18nObject()
    help: I18nObject | None = None
    url: str | None = None
    placeholder: I18nObject | None = None


class OAuthSchema(GoStruct):
    client_schema: list[ProviderConfig] | None = None
    credentials_schema: list[ProviderConfig] | None = None


class ParameterOption(GoStruct):
    value: str = ""
    label: I18nObject = I18nObject()
    icon: str = ""


class ParameterAutoGenerate(GoStruct):
    type: str = ""


class ParameterTemplate(GoStruct):
    enabled: bool = False


# model_declaration.go ---------------------------------------------------------------------


class ModelProviderFormShowOnObject(GoStruct):
    variable: str = ""
    value: str = ""


class ModelProviderFormOption(GoStruct):
    label: I18nObject = I18nObject()
    value: str = ""
    show_on: list[ModelProviderFormShowOnObject] | None = None


class ModelProviderCredentialFormSchema(GoStruct):
    variable: str = ""
    label: I18nObject = I18nObject()
    type: str = ""
    required: bool = False
    default: str | None = None
    options: list[ModelProviderFormOption] | None = None
    help: I18nObject | None = None
    url: str | None = None
    placeholder: I18nObject | None = None
    max_length: int = 0
    show_on: list[ModelProviderFormShowOnObject] | None = None


class ModelProviderCredentialSchema(GoStruct):
    credential_form_schemas: list[ModelProviderCredentialFormSchema] | None = None


class FieldModelSchema(GoStruct):
    label: I18nObject = I18nObject()
    placeholder: I18nObject | None = None


class ModelCredentialSchema(GoStruct):
    model: FieldModelSchema = FieldModelSchema()
    credential_form_schemas: list[ModelProviderCredentialFormSchema] | None = None


class ModelProviderHelpEntity(GoStruct):
    title: I18nObject = I18nObject()
    url: I18nObject = I18nObject()


class ModelPosition(GoStruct):
    """Each list is a `*[]string` in Go: present (even empty) once its file was read."""

    llm: Annotated[list[str] | None, OMIT] = None
    text_embedding: Annotated[list[str] | None, OMIT] = None
    rerank: Annotated[list[str] | None, OMIT] = None
    tts: Annotated[list[str] | None, OMIT] = None
    speech2text: Annotated[list[str] | None, OMIT] = None
    moderation: Annotated[list[str] | None, OMIT] = None

    pointer_slices: ClassVar[tuple[str, ...]] = (
        "llm",
        "text_embedding",
        "rerank",
        "tts",
        "speech2text",
        "moderation",
    )
    go_marshal = classmethod(_omitting_as_go)


class ModelProviderDeclaration(GoStruct):
    provider: str = ""
    label: I18nObject = I18nObject()
    description: I18nObject | None = None
    icon_small: I18nObject | None = None
    icon_large: I18nObject | None = None
    icon_small_dark: I18nObject | None = None
    icon_large_dark: I18nObject | None = None
    background: str | None = None
    help: ModelProviderHelpEntity | None = None
    supported_model_types: list[str] | None = None
    configurate_methods: list[str] | None = None
    provider_credential_schema: ModelProviderCredentialSchema | None = None
    model_credential_schema: ModelCredentialSchema | None = None
    position: Annotated[ModelPosition | None, OMIT] = None
    models: list[ModelDeclaration] | None = None

    nil_as_empty: ClassVar[tuple[str, ...]] = ("models",)
    go_marshal = classmethod(_marshal_with_empty_lists)


# tool_declaration.go ----------------------------------------------------------------------


class ToolIdentity(GoStruct):
    author: str = ""
    name: str = ""
    label: I18nObject = I18nObject()


class ToolParameter(GoStruct):
    name: str = ""
    label: I18nObject = I18nObject()
    human_description: I18nObject = I18nObject()
    type: str = ""
    scope: str | None = None
    form: str = ""
    llm_description: str = ""
    required: bool = False
    auto_generate: ParameterAutoGenerate | None = None
    template: ParameterTemplate | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    multiple: bool = False
    precision: int | None = None
    options: list[ParameterOption] | None = None


class ToolDescription(GoStruct):
    human: I18nObject = I18nObject()
    llm: str = ""


class ToolDeclaration(GoStruct):
    identity: ToolIdentity = ToolIdentity()
    description: ToolDescription = ToolDescription()
    parameters: list[ToolParameter] | None = None
    output_schema: Annotated[dict[str, Any] | None, OMIT] = None
    has_runtime_parameters: bool = False


class ToolProviderIdentity(GoStruct):
    author: str = ""
    name: str = ""
    description: I18nObject = I18nObject()
    icon: str = ""
    icon_dark: str = ""
    label: I18nObject = I18nObject()
    tags: list[str] | None = None


class ToolProviderDeclaration(GoStruct):
    identity: ToolProviderIdentity = ToolProviderIdentity()
    credentials_schema: list[ProviderConfig] | None = None
    oauth_schema: OAuthSchema | None = None
    tools: list[ToolDeclaration] | None = None

    nil_as_empty: ClassVar[tuple[str, ...]] = ("credentials_schema", "tools")
    go_marshal = classmethod(_marshal_with_empty_lists)


# agent_declaration.go ---------------------------------------------------------------------


class AgentStrategyProviderIdentity(ToolProviderIdentity):
    pass


class AgentStrategyIdentity(ToolIdentity):
    pass


class AgentStrategyParameter(GoStruct):
    name: str = ""
    label: I18nObject = I18nObject()
    help: I18nObject = I18nObject()
    type: str = ""
    auto_generate: ParameterAutoGenerate | None = None
    template: ParameterTemplate | None = None
    scope: str | None = None
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    precision: int | None = None
    options: list[ParameterOption] | None = None


class AgentStrategyDeclaration(GoStruct):
    identity: AgentStrategyIdentity = AgentStrategyIdentity()
    description: I18nObject = I18nObject()
    parameters: list[AgentStrategyParameter] | None = None
    output_schema: dict[str, Any] | None = None
    features: list[str] | None = None


class AgentStrategyProviderDeclaration(GoStruct):
    identity: AgentStrategyProviderIdentity = AgentStrategyProviderIdentity()
    strategies: list[AgentStrategyDeclaration] | None = None

    @classmethod
    def go_marshal(cls, value: dict[str, Any]) -> str:
        """Nil strategies and nil features are written as []."""
        strategies = [
            {**strategy, "features": strategy["features"] or []}
            for strategy in value["strategies"] or []
        ]
        return "{" + ",".join(encode_members(cls, {**value, "strategies": strategies})) + "}"


# datasource_declaration.go ----------------------------------------------------------------


class DatasourceIdentity(GoStruct):
    author: str = ""
    name: str = ""
    label: I18nObject = I18nObject()
    icon: str = ""


class DatasourceParameter(GoStruct):
    name: str = ""
    label: I18nObject = I18nObject()
    type: str = ""
    scope: str | None = None
    required: bool = False
    auto_generate: ParameterAutoGenerate | None = None
    template: ParameterTemplate | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    precision: int | None = None
    options: list[ParameterOption] | None = None
    description: I18nObject = I18nObject()


class DatasourceDeclaration(GoStruct):
    identity: DatasourceIdentity = DatasourceIdentity()
    parameters: list[DatasourceParameter] | None = None
    description: I18nObject = I18nObject()
    output_schema: Annotated[dict[str, Any] | None, OMIT] = None


class DatasourceProviderIdentity(GoStruct):
    author: str = ""
    name: str = ""
    description: I18nObject = I18nObject()
    icon: str = ""
    label: I18nObject = I18nObject()
    tags: list[str] | None = None


class DatasourceProviderDeclaration(GoStruct):
    identity: DatasourceProviderIdentity = DatasourceProviderIdentity()
    credentials_schema: list[ProviderConfig] | None = None
    oauth_schema: OAuthSchema | None = None
    provider_type: str = ""
    datasources: list[DatasourceDeclaration] | None = None

    nil_as_empty: ClassVar[tuple[str, ...]] = ("credentials_schema", "datasources")
    go_marshal = classmethod(_marshal_with_empty_lists)


# trigger_declaration.go -------------------------------------------------------------------


class EventParameterOption(GoStruct):
    label: I18nObject = I18nObject()
    value: Any = None


class EventParameter(GoStruct):
    name: str = ""
    label: I18nObject = I18nObject()
    type: str = ""
    auto_generate: Annotated[ParameterAutoGenerate | None, OMIT] = None
    template: Annotated[ParameterTemplate | None, OMIT] = None
    scope: Annotated[str | None, OMIT] = None
    required: bool = False
    multiple: Annotated[bool, OMIT] = False
    default: Annotated[Any, OMIT] = None
    min: Annotated[float | None, OMIT] = None
    max: Annotated[float | None, OMIT] = None
    precision: Annotated[int | None, OMIT] = None
    options: Annotated[list[EventParameterOption] | None, OMIT] = None
    description: Annotated[I18nObject | None, OMIT] = None

    go_marshal = classmethod(_omitting_as_go)


class EventIdentity(GoStruct):
    author: str = ""
    name: str = ""
    label: I18nObject = I18nObject()


class EventDeclaration(GoStruct):
    identity: EventIdentity = EventIdentity()
    parameters: list[EventParameter] | None = None
    description: I18nObject = I18nObject()
    output_schema: Annotated[dict[str, Any] | None, OMIT] = None


class SubscriptionConstructor(GoStruct):
    parameters: list[EventParameter] | None = None
    credentials_schema: list[ProviderConfig] | None = None
    oauth_schema: Annotated[OAuthSchema | None, OMIT] = None


class TriggerProviderIdentity(ToolProviderIdentity):
    pass


class TriggerProviderDeclaration(GoStruct):
    identity: TriggerProviderIdentity = TriggerProviderIdentity()
    subscription_schema: list[ProviderConfig] | None = None
    subscription_constructor: SubscriptionConstructor | None = None
    events: list[EventDeclaration] | None = None

    @classmethod
    def go_marshal(cls, value: dict[str, Any]) -> str:
        """Nil subscription schema, events and constructor lists are written as []."""
        filled = {
            **value,
            "subscription_schema": value["subscription_schema"] or [],
            "events": value["events"] or [],
        }
        constructor = value["subscription_constructor"]
        if constructor is not None:
            filled["subscription_constructor"] = {
                **constructor,
                "parameters": constructor["parameters"] or [],
                "credentials_schema": constructor["credentials_schema"] or [],
            }
        return "{" + ",".join(encode_members(cls, filled)) + "}"


# endpoint_declaration.go ------------------------------------------------------------------


class EndpointDeclaration(GoStruct):
    path: str = ""
    method: str = ""
    hidden: bool = False


class EndpointProviderDeclaration(GoStruct):
    settings: list[ProviderConfig] | None = None
    endpoints: list[EndpointDeclaration] | None = None


# plugin_declaration.go --------------------------------------------------------------------


class PluginPermissionToolRequirement(GoStruct):
    enabled: bool = False


class PluginPermissionModelRequirement(GoStruct):
    enabled: bool = False
    llm: bool = False
    text_embedding: bool = False
    rerank: bool = False
    tts: bool = False
    speech2text: bool = False
    moderation: bool = False


class PluginPermissionStorageRequirement(GoStruct):
    enabled: bool = False
    size: int = 0


class PluginPermissionRequirement(GoStruct):
    tool: Annotated[PluginPermissionToolRequirement | None, OMIT] = None
    model: Annotated[PluginPermissionModelRequirement | None, OMIT] = None
    node: Annotated[PluginPermissionToolRequirement | None, OMIT] = None
    endpoint: Annotated[PluginPermissionToolRequirement | None, OMIT] = None
    app: Annotated[PluginPermissionToolRequirement | None, OMIT] = None
    storage: Annotated[PluginPermissionStorageRequirement | None, OMIT] = None


class PluginResourceRequirement(GoStruct):
    memory: int = 0
    permission: Annotated[PluginPermissionRequirement | None, OMIT] = None


class PluginRunner(GoStruct):
    language: str = ""
    version: str = ""
    entrypoint: str = ""


class PluginMeta(GoStruct):
    version: str = ""
    arch: list[str] | None = None
    runner: PluginRunner = PluginRunner()
    minimum_dify_version: str | None = None


class PluginExtensions(GoStruct):
    tools: list[str] | None = None
    models: list[str] | None = None
    endpoints: list[str] | None = None
    agent_strategies: list[str] | None = None
    datasources: list[str] | None = None
    triggers: list[str] | None = None


class PluginDeclarationWithoutAdvancedFields(GoStruct):
    version: str = ""
    type: str = ""
    author: str = ""
    name: str = ""
    label: I18nObject = I18nObject()
    description: I18nObject = I18nObject()
    icon: str = ""
    icon_dark: str = ""
    resource: PluginResourceRequirement = PluginResourceRequirement()
    plugins: PluginExtensions = PluginExtensions()
    meta: PluginMeta = PluginMeta()
    tags: list[str] | None = None
    created_at: str = ""
    """A Go time.Time, kept as the RFC 3339 text Go writes for it."""
    privacy: Annotated[str | None, OMIT] = None
    repo: Annotated[str | None, OMIT] = None


class PluginDeclaration(PluginDeclarationWithoutAdvancedFields):
    verified: bool = False
    endpoint: Annotated[EndpointProviderDeclaration | None, OMIT] = None
    model: Annotated[ModelProviderDeclaration | None, OMIT] = None
    tool: Annotated[ToolProviderDeclaration | None, OMIT] = None
    agent_strategy: Annotated[AgentStrategyProviderDeclaration | None, OMIT] = None
    datasource: Annotated[DatasourceProviderDeclaration | None, OMIT] = None
    trigger: Annotated[TriggerProviderDeclaration | None, OMIT] = None

    go_marshal = classmethod(_omitting_as_go)


PROVIDER_KINDS: dict[str, type[GoStruct]] = {
    "model": ModelProviderDeclaration,
    "tool": ToolProviderDeclaration,
    "agent_strategy": AgentStrategyProviderDeclaration,
    "datasource": DatasourceProviderDeclaration,
    "trigger": TriggerProviderDeclaration,
    "endpoint": EndpointProviderDeclaration,
}
"""PluginDeclaration's provider fields and their structs."""
