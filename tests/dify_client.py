"""How Dify's API server reads the daemon's answers (api/core/plugin/impl/base.py), for tests.

Reimplemented from ../shared/reference/dify-client.md §1.3 and §1.5: each non-empty line, a
leading `data:` dropped, is an envelope; code -500 decodes `message` as a daemon error, and a
PluginInvokeError decodes its inner message once more into the plugin's own error type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


@dataclass
class DaemonError(Exception):
    """What Dify raises for a -500 item: the daemon's error type, or the plugin's."""

    error_type: str
    message: str
    code: int = -500


def envelopes(body: str | bytes) -> list[dict[str, Any]]:
    """Every envelope of a stream or plain JSON body, as Dify splits it."""
    text = body.decode() if isinstance(body, bytes) else body
    found = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if line.startswith("data:"):
            line = line[5:].strip()
        if line:
            found.append(json.loads(line))
    return found


def items(body: str | bytes) -> Iterable[Any]:
    """The data of each success item; raises DaemonError as Dify does at the first error."""
    for envelope in envelopes(body):
        if envelope["code"] == 0:
            yield envelope["data"]
            continue
        if envelope["code"] != -500:
            raise ValueError(f"plugin daemon: {envelope['message']}, code: {envelope['code']}")
        error = json.loads(envelope["message"])
        if error["error_type"] == "PluginInvokeError":
            inner = json.loads(error["message"])
            raise DaemonError(inner["error_type"], inner["message"])
        raise DaemonError(error["error_type"], error["message"])


def collect(body: str | bytes) -> tuple[list[Any], DaemonError | None]:
    """The items before the first error, and that error (None when the stream ended cleanly)."""
    received: list[Any] = []
    try:
        for item in items(body):
            received.append(item)
    except DaemonError as error:
        return received, error
    return received, None


# The entities Dify parses management answers into -----------------------------------------
#
# Written by hand from ../shared/reference/dify-client.md §3 (api/core/plugin/entities and the
# model runtime's entities): enums are closed, as in Dify, so a value Dify does not know fails
# the parse the way it fails Dify's model-provider list.


class DifyI18nObject(BaseModel):
    en_US: str
    zh_Hans: str | None = None
    ja_JP: str | None = None
    pt_BR: str | None = None


class DifyModelType(StrEnum):
    LLM = "llm"
    TEXT_EMBEDDING = "text-embedding"
    RERANK = "rerank"
    SPEECH2TEXT = "speech2text"
    MODERATION = "moderation"
    TTS = "tts"


class DifyModelFeature(StrEnum):
    """Newest Dify's list (graphon): `polling` is unknown to older releases, whose parse of a
    provider list fails on it."""

    TOOL_CALL = "tool-call"
    MULTI_TOOL_CALL = "multi-tool-call"
    AGENT_THOUGHT = "agent-thought"
    VISION = "vision"
    STREAM_TOOL_CALL = "stream-tool-call"
    DOCUMENT = "document"
    VIDEO = "video"
    AUDIO = "audio"
    STRUCTURED_OUTPUT = "structured-output"
    POLLING = "polling"


class DifyConfigurateMethod(StrEnum):
    PREDEFINED_MODEL = "predefined-model"
    CUSTOMIZABLE_MODEL = "customizable-model"


class DifyFormType(StrEnum):
    TEXT_INPUT = "text-input"
    SECRET_INPUT = "secret-input"
    SELECT = "select"
    RADIO = "radio"
    SWITCH = "switch"


class DifyParameterType(StrEnum):
    FLOAT = "float"
    INT = "int"
    STRING = "string"
    BOOLEAN = "boolean"
    TEXT = "text"


class DifyFormShowOnObject(BaseModel):
    variable: str
    value: str


class DifyFormOption(BaseModel):
    label: DifyI18nObject
    value: str
    show_on: list[DifyFormShowOnObject] = []


class DifyCredentialFormSchema(BaseModel):
    variable: str
    label: DifyI18nObject
    type: DifyFormType
    required: bool = True
    default: str | None = None
    options: list[DifyFormOption] | None = None
    placeholder: DifyI18nObject | None = None
    max_length: int = 0
    show_on: list[DifyFormShowOnObject] = []


class DifyProviderCredentialSchema(BaseModel):
    credential_form_schemas: list[DifyCredentialFormSchema]


class DifyParameterRule(BaseModel):
    name: str
    use_template: str | None = None
    label: DifyI18nObject
    type: DifyParameterType
    help: DifyI18nObject | None = None
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    precision: int | None = None
    options: list[str] = []


class DifyPriceConfig(BaseModel):
    input: Decimal
    output: Decimal | None = None
    unit: Decimal
    currency: str


class DifyAIModelEntity(BaseModel):
    model: str
    label: DifyI18nObject
    model_type: DifyModelType
    features: list[DifyModelFeature] | None = None
    fetch_from: DifyConfigurateMethod
    model_properties: dict[str, Any]
    deprecated: bool = False
    parameter_rules: list[DifyParameterRule] = []
    pricing: DifyPriceConfig | None = None
    model_config = ConfigDict(protected_namespaces=())


class DifyProviderEntity(BaseModel):
    provider: str
    label: DifyI18nObject
    description: DifyI18nObject | None = None
    icon_small: DifyI18nObject | None = None
    icon_small_dark: DifyI18nObject | None = None
    background: str | None = None
    supported_model_types: list[DifyModelType]
    configurate_methods: list[DifyConfigurateMethod]
    models: list[DifyAIModelEntity] = Field(default_factory=list)
    provider_credential_schema: DifyProviderCredentialSchema | None = None
    position: dict[str, list[str]] | None = None


class DifyPluginModelProviderEntity(BaseModel):
    id: str
    created_at: datetime
    updated_at: datetime
    provider: str
    tenant_id: str
    plugin_unique_identifier: str
    plugin_id: str
    declaration: DifyProviderEntity


class DifyToolProviderIdentity(BaseModel):
    author: str
    name: str
    description: DifyI18nObject
    icon: str
    icon_dark: str | None = None
    label: DifyI18nObject
    tags: list[str] | None = []


class DifyProviderConfig(BaseModel):
    name: str
    type: str
    required: bool = False
    default: Any = None
    options: list[Any] | None = None
    label: DifyI18nObject | None = None
    help: DifyI18nObject | None = None
    url: str | None = None
    placeholder: DifyI18nObject | None = None


class DifyToolIdentity(BaseModel):
    author: str
    name: str
    label: DifyI18nObject
    provider: str


class DifyToolDescription(BaseModel):
    human: DifyI18nObject
    llm: str


class DifyToolParameter(BaseModel):
    name: str
    label: DifyI18nObject
    type: str
    form: str
    required: bool | None = False
    human_description: DifyI18nObject | None = None
    llm_description: str | None = None
    options: list[Any] = []

    @field_validator("options", mode="before")
    @classmethod
    def null_options_are_none(cls, value: Any) -> Any:
        """Dify's PluginParameter turns anything but a list (Go's null) into []."""
        return value if isinstance(value, list) else []


class DifyToolEntity(BaseModel):
    identity: DifyToolIdentity
    parameters: list[DifyToolParameter] = []
    description: DifyToolDescription | None = None
    output_schema: dict[str, Any] | None = None
    has_runtime_parameters: bool = False


class DifyToolProviderEntityWithPlugin(BaseModel):
    identity: DifyToolProviderIdentity
    credentials_schema: list[DifyProviderConfig] = []
    oauth_schema: dict[str, Any] | None = None
    tools: list[DifyToolEntity] = []


class DifyPluginToolProviderEntity(BaseModel):
    provider: str
    plugin_unique_identifier: str
    plugin_id: str
    declaration: DifyToolProviderEntityWithPlugin


class DifyPluginEntity(BaseModel):
    id: str
    created_at: datetime
    updated_at: datetime
    name: str
    installation_id: str
    tenant_id: str
    endpoints_setups: int
    endpoints_active: int
    runtime_type: str
    source: str
    meta: dict[str, Any]
    plugin_id: str
    plugin_unique_identifier: str
    version: str
    checksum: str
    declaration: dict[str, Any]


class DifyPluginListResponse(BaseModel):
    list: list[DifyPluginEntity]
    total: int


class DifyBasicResponse[T](BaseModel):
    """PluginDaemonBasicResponse[T]."""

    code: int
    message: str
    data: T | None = None


def tool_providers_transformer(answer: dict[str, Any]) -> dict[str, Any]:
    """What Dify's fetch_tool_providers does to the list before parsing: each tool learns its
    provider's name, `plugin_id/provider`."""
    for provider in answer.get("data") or []:
        for tool in provider["declaration"]["tools"]:
            tool["identity"]["provider"] = provider["declaration"]["identity"]["name"]
    return answer
