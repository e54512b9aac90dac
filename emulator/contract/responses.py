"""Response items of the model routes: each plugin chunk is decoded, validated and re-encoded.

Mirrors pkg/entities/model_entities (llm.go, text_embedding.go, rerank.go, multimodal.go,
tts.go, speech2text.go, moderation.go, validate.go, polling.go, ai_model.go) and the parts of
plugin_entities.ModelDeclaration that `model/schema` returns. The daemon reads each `stream`
frame with `json.Unmarshal` plus the validator; a failure ends the stream with an
`unmarshal_error`. What it writes back is `json.Marshal` of the decoded value, so defaults,
custom marshalers and decimal strings show on the wire.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar

from emulator.contract.gojson import encode_any, encode_members
from emulator.contract.gotypes import Go, GoStruct, RawJSON, Struct, zero_value
from emulator.contract.model import GO_SPACE, PromptMessage

# llm.go -----------------------------------------------------------------------------------


class LLMUsage(GoStruct):
    prompt_tokens: Annotated[int | None, Go(validate="required")] = None
    prompt_unit_price: Annotated[Decimal, Go(validate="required")] = Decimal(0)
    prompt_price_unit: Annotated[Decimal, Go(validate="required")] = Decimal(0)
    prompt_price: Annotated[Decimal, Go(validate="required")] = Decimal(0)
    completion_tokens: Annotated[int | None, Go(validate="required")] = None
    completion_unit_price: Annotated[Decimal, Go(validate="required")] = Decimal(0)
    completion_price_unit: Annotated[Decimal, Go(validate="required")] = Decimal(0)
    completion_price: Annotated[Decimal, Go(validate="required")] = Decimal(0)
    total_tokens: Annotated[int | None, Go(validate="required")] = None
    total_price: Annotated[Decimal, Go(validate="required")] = Decimal(0)
    currency: Annotated[str | None, Go(validate="required")] = None
    latency: Annotated[float | None, Go(validate="required")] = None


class LLMResultChunkDelta(GoStruct):
    index: Annotated[int | None, Go(validate="required")] = None
    message: Annotated[PromptMessage, Go(validate="required")] = PromptMessage()
    usage: Annotated[LLMUsage | None, Go(validate="omitempty")] = None
    finish_reason: Annotated[str | None, Go(validate="omitempty")] = None


class LLMResultChunk(GoStruct):
    model: Annotated[str, Go(validate="required")] = ""
    system_fingerprint: Annotated[str, Go(validate="omitempty")] = ""
    delta: Annotated[LLMResultChunkDelta, Go(validate="required")] = LLMResultChunkDelta()

    go_marshal_adds: ClassVar[dict[str, Any]] = {"prompt_messages": []}
    """The daemon's MarshalJSON keeps old Dify happy with an always-empty prompt_messages."""

    @classmethod
    def go_marshal(cls, value: dict[str, Any]) -> str:
        added = [f'"{name}":{encode_any(extra)}' for name, extra in cls.go_marshal_adds.items()]
        return "{" + ",".join([*encode_members(cls, value), *added]) + "}"


class LLMGetNumTokensResponse(GoStruct):
    num_tokens: int = 0


# text_embedding.go, multimodal.go ---------------------------------------------------------


class EmbeddingUsage(GoStruct):
    tokens: Annotated[int | None, Go(validate="required")] = None
    total_tokens: Annotated[int | None, Go(validate="required")] = None
    unit_price: Annotated[Decimal, Go(validate="required")] = Decimal(0)
    price_unit: Annotated[Decimal, Go(validate="required")] = Decimal(0)
    total_price: Annotated[Decimal, Go(validate="required")] = Decimal(0)
    currency: Annotated[str | None, Go(validate="required")] = None
    latency: Annotated[float | None, Go(validate="required")] = None


class TextEmbeddingResult(GoStruct):
    model: Annotated[str, Go(validate="required")] = ""
    embeddings: Annotated[list[list[float] | None] | None, Go(validate="required,dive")] = None
    usage: Annotated[EmbeddingUsage, Go(validate="required")] = EmbeddingUsage()


class MultimodalEmbeddingResult(GoStruct):
    model: Annotated[str, Go(validate="required")] = ""
    embeddings: Annotated[list[list[float] | None] | None, Go(validate="required,dive")] = None
    usage: Annotated[EmbeddingUsage, Go(validate="required")] = EmbeddingUsage()


class GetTextEmbeddingNumTokensResponse(GoStruct):
    num_tokens: Annotated[list[int] | None, Go(validate="required")] = None


# rerank.go, multimodal.go -----------------------------------------------------------------


class RerankDocument(GoStruct):
    index: Annotated[int | None, Go(validate="required")] = None
    text: Annotated[str | None, Go(validate="required")] = None
    score: Annotated[float | None, Go(validate="required")] = None


class RerankResult(GoStruct):
    model: Annotated[str, Go(validate="required")] = ""
    docs: Annotated[list[RerankDocument] | None, Go(validate="required,dive")] = None


class MultimodalRerankDocument(GoStruct):
    index: Annotated[int | None, Go(validate="required")] = None
    text: Annotated[str | None, Go(validate="required")] = None
    score: Annotated[float | None, Go(validate="required")] = None


class MultimodalRerankResult(GoStruct):
    model: Annotated[str, Go(validate="required")] = ""
    docs: Annotated[list[MultimodalRerankDocument] | None, Go(validate="required,dive")] = None


# tts.go, speech2text.go, moderation.go, validate.go ---------------------------------------


class TTSResult(GoStruct):
    result: str = ""
    """Hex of the audio bytes."""
    mime_type: Annotated[str, Go(omitempty=True)] = ""


class TTSModelVoice(GoStruct):
    name: Annotated[str, Go(validate="required")] = ""
    value: Annotated[str, Go(validate="required")] = ""


class GetTTSVoicesResponse(GoStruct):
    voices: Annotated[list[TTSModelVoice] | None, Go(validate="required,dive")] = None


class Speech2TextResult(GoStruct):
    result: str = ""


class ModerationResult(GoStruct):
    result: bool = False


class ValidateCredentialsResult(GoStruct):
    result: bool = False
    credentials: dict[str, Any] | None = None


# polling.go -------------------------------------------------------------------------------


class ModelPollingResult(GoStruct):
    status: Annotated[str, Go(validate="required,oneof=running succeeded failed")] = ""
    plugin_state: Annotated[dict[str, Any] | None, Go(omitempty=True)] = None
    result: Annotated[RawJSON | None, Go(omitempty=True)] = None
    error: Annotated[str, Go(omitempty=True)] = ""
    next_check_after_seconds: Annotated[int | None, Go(omitempty=True)] = None
    expires_after_seconds: Annotated[int | None, Go(omitempty=True)] = None
    max_attempts: Annotated[int | None, Go(omitempty=True)] = None

    @staticmethod
    def go_struct_errors(value: dict[str, Any]) -> list[tuple[str, str, str]]:
        """Each status needs its own companion field."""
        status, result = value["status"], value["result"]
        if status == "running" and not value["plugin_state"]:
            return [("plugin_state", "plugin_state", "required_for_running")]
        if status == "succeeded" and (result is None or result.parsed is None):
            return [("result", "result", "required_for_succeeded")]
        if status == "failed" and not value["error"].strip(GO_SPACE):
            return [("error", "error", "required_for_failed")]
        return []


# ai_model.go and plugin_entities.ModelDeclaration -----------------------------------------


class I18nObject(GoStruct):
    en_US: Annotated[str, Go("EnUS", validate="required,gt=0,lt=1024")] = ""
    ja_JP: Annotated[str, Go("JaJp", validate="lt=1024", omitempty=True)] = ""
    zh_Hans: Annotated[str, Go("ZhHans", validate="lt=1024", omitempty=True)] = ""
    pt_BR: Annotated[str, Go("PtBr", validate="lt=1024", omitempty=True)] = ""


class ModelParameterRule(GoStruct):
    name: Annotated[str, Go(validate="required,lt=256")] = ""
    use_template: Annotated[str | None, Go(validate="omitempty,lt=256")] = None
    label: Annotated[I18nObject | None, Go(validate="omitempty")] = None
    type: Annotated[str | None, Go(validate="omitempty,model_parameter_type")] = None
    help: Annotated[I18nObject | None, Go(validate="omitempty")] = None
    required: bool = False
    default: Any = None
    min: Annotated[float | None, Go(validate="omitempty")] = None
    max: Annotated[float | None, Go(validate="omitempty")] = None
    precision: Annotated[int | None, Go(validate="omitempty")] = None
    options: Annotated[list[str] | None, Go(validate="omitempty,dive,lt=256")] = None

    @classmethod
    def go_after_unmarshal(cls, value: dict[str, Any]) -> None:
        """TransformTemplate, without the built-in templates (see the README's Limitations)."""
        if value["label"] is None or value["label"]["en_US"] == "":
            value["label"] = _i18n(value["name"])
        if value["options"] is None:
            value["options"] = []


class ModelPriceConfig(GoStruct):
    input: Annotated[Decimal, Go(validate="required")] = Decimal(0)
    output: Annotated[Decimal | None, Go(validate="omitempty")] = None
    unit: Annotated[Decimal, Go(validate="required")] = Decimal(0)
    currency: Annotated[str, Go(validate="required")] = ""


class ModelDeclaration(GoStruct):
    model: Annotated[str, Go(validate="required,lt=256")] = ""
    label: Annotated[I18nObject, Go(validate="required")] = I18nObject()
    model_type: Annotated[str, Go(validate="required,model_type")] = ""
    features: Annotated[list[str] | None, Go(validate="omitempty,lte=256,dive,lt=256")] = None
    fetch_from: Annotated[str, Go(validate="omitempty,model_provider_configurate_method")] = ""
    model_properties: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None
    deprecated: bool = False
    parameter_rules: Annotated[
        list[ModelParameterRule] | None, Go(validate="omitempty,lte=128,dive,parameter_rule")
    ] = None
    pricing: Annotated[ModelPriceConfig | None, Go("PriceConfig", validate="omitempty")] = None

    @classmethod
    def go_after_unmarshal(cls, value: dict[str, Any]) -> None:
        if value["fetch_from"] == "":
            value["fetch_from"] = "predefined-model"
        if value["parameter_rules"] is None:
            value["parameter_rules"] = []

    @classmethod
    def go_marshal(cls, value: dict[str, Any]) -> str:
        """An empty English label is written as the model's name."""
        if value["label"]["en_US"] == "":
            value = {**value, "label": {**value["label"], "en_US": value["model"]}}
        return "{" + ",".join(encode_members(cls, value)) + "}"


class GetModelSchemasResponse(GoStruct):
    model_schema: Annotated[ModelDeclaration | None, Go(validate="omitempty")] = None


def _i18n(text: str) -> dict[str, Any]:
    label: dict[str, Any] = zero_value(Struct(I18nObject))
    label["en_US"] = text
    return label


# plugin_entities/event.go -----------------------------------------------------------------


class ErrorResponse(GoStruct):
    """A plugin's `error` session message."""

    message: str = ""
    error_type: str = ""
    args: Annotated[dict[str, Any] | None, Go(validate="omitempty,max=10")] = None


class PluginUniversalEvent(GoStruct):
    """One line a plugin prints: the outermost layer of the protocol."""

    session_id: Annotated[str, Go("SessionId")] = ""
    event: str = ""
    data: RawJSON | None = None


class SessionMessage(GoStruct):
    """The `data` of a `session` event."""

    type: Annotated[str, Go(validate="required")] = ""
    data: Annotated[RawJSON | None, Go(validate="required")] = None
