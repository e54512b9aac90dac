"""The `data` objects of the 16 model dispatch routes.

Mirrors langgenius/dify-plugin-daemon pkg/entities/requests/model.go and
pkg/entities/model_entities/llm.go, multimodal.go: the same structs, embeddings, field order,
Go names and `validate` tags, because the daemon's 400 texts are made of them.
"""

from __future__ import annotations

from typing import Annotated, Any

from emulator.contract.findings import WarningKind
from emulator.contract.gojson import DecodeAborted, GoDecoder
from emulator.contract.gotypes import Go, GoStruct, RawJSON, Slice, Struct, StructValue

MODEL_TYPES = (
    "llm",
    "text-embedding",
    "rerank",
    "speech2text",
    "moderation",
    "tts",
    "text2img",
    "multimodal-embedding",
    "multimodal-rerank",
)
PROMPT_MESSAGE_ROLES = ("system", "user", "assistant", "tool")
PROMPT_MESSAGE_CONTENT_TYPES = ("text", "image", "audio", "video", "document")
MULTIMODAL_CONTENT_TYPES = ("text", "image")
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""What Go's strings.TrimSpace trims (Unicode White_Space); Python's strip() trims more."""
MODEL_PARAMETER_TYPES = ("float", "int", "string", "boolean", "text")
CONFIGURATE_METHODS = ("predefined-model", "customizable-model")


# model_entities ---------------------------------------------------------------------------


class PromptMessageContent(GoStruct):
    type: Annotated[str, Go(validate="required,prompt_message_content_type")] = ""
    base64_data: str = ""
    url: Annotated[str, Go("URL")] = ""
    data: str = ""
    encode_format: str = ""
    format: str = ""
    mime_type: str = ""
    detail: str = ""
    filename: str = ""
    opaque_body: Annotated[RawJSON | None, Go(omitempty=True)] = None


class PromptMessageToolCallFunction(GoStruct):
    name: str = ""
    arguments: str = ""


class PromptMessageToolCall(GoStruct):
    id: Annotated[str, Go("ID")] = ""
    type: str = ""
    function: PromptMessageToolCallFunction = PromptMessageToolCallFunction()


class _PromptMessageJSON(GoStruct):
    """The auxiliary struct PromptMessage.UnmarshalJSON decodes into first."""

    role: str = ""
    content: RawJSON | None = None
    name: Annotated[str, Go(omitempty=True)] = ""
    tool_calls: Annotated[list[PromptMessageToolCall] | None, Go(omitempty=True)] = None
    tool_call_id: Annotated[str, Go("ToolCallId", omitempty=True)] = ""
    opaque_body: Annotated[RawJSON | None, Go(omitempty=True)] = None


class PromptMessage(GoStruct):
    role: Annotated[str, Go(validate="required,prompt_message_role")] = ""
    content: Annotated[Any, Go(validate="required,prompt_message_content")] = None
    name: str = ""
    tool_calls: Annotated[list[PromptMessageToolCall] | None, Go(validate="dive")] = None
    tool_call_id: Annotated[str, Go("ToolCallId")] = ""
    opaque_body: Annotated[RawJSON | None, Go(omitempty=True)] = None

    @classmethod
    def go_unmarshal(cls, decoder: GoDecoder, value: Any, path: str) -> dict[str, Any]:
        """The daemon's UnmarshalJSON: any error aborts decoding of the whole request."""
        aux = GoDecoder()
        raw = aux.decode_document(_PromptMessageJSON, value, path)
        decoder.warnings.extend(aux.warnings)
        content, error = _prompt_content(raw, path)
        error = aux.error or error
        if error is not None:
            decoder.warn(
                WarningKind.DECODE_ABORTED,
                path,
                "a prompt message with a role and a string or list content",
                f"one the daemon's decoder refuses ({error})",
                "decoding stops here and every key after this point is lost",
            )
            raise DecodeAborted(error)
        return StructValue(cls, {**raw, "content": content})


def _prompt_content(raw: dict[str, Any], path: str) -> tuple[Any, str | None]:
    """The content as the daemon decodes it (a string or a []PromptMessageContent), or an error."""
    if raw["role"] == "":
        return None, "role field is required"
    if raw["content"] is None or raw["content"].parsed is None:
        return None, "content field is required"
    value = raw["content"].parsed
    if isinstance(value, str):
        return value, None
    if not isinstance(value, list):
        return None, "content must be a string or an array of prompt message content"
    parts = GoDecoder()
    holder: dict[str, Any] = {"content": None}
    parts.decode_into(Slice(Struct(PromptMessageContent)), value, holder, "content", path)
    return holder["content"], parts.error


class PromptMessageTool(GoStruct):
    name: Annotated[str, Go(validate="required")] = ""
    description: str = ""
    parameters: dict[str, Any] | None = None


class ToolChoice(GoStruct):
    mode: Annotated[str, Go(validate="required,oneof=auto none required tool")] = ""
    name: Annotated[str, Go(validate="omitempty", omitempty=True)] = ""

    @staticmethod
    def go_struct_errors(value: dict[str, Any]) -> list[tuple[str, str, str]]:
        """The daemon's struct rule: mode `tool` needs a non-blank name."""
        if value["mode"] == "tool" and not value["name"].strip(GO_SPACE):
            return [("name", "name", "required_for_tool")]
        return []


class MultimodalContent(GoStruct):
    content: Annotated[str, Go(validate="required")] = ""
    content_type: Annotated[str, Go(validate="required,multimodal_content_type")] = ""


# requests ---------------------------------------------------------------------------------


class Credentials(GoStruct):
    credentials: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None
    credential_type: Annotated[str, Go(validate="omitempty", omitempty=True)] = ""


class BaseRequestInvokeModel(GoStruct):
    provider: Annotated[str, Go(validate="required")] = ""
    model: Annotated[str, Go(validate="required")] = ""


class InvokeLLMSchema(GoStruct):
    model_parameters: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None
    prompt_messages: Annotated[list[PromptMessage] | None, Go(validate="omitempty")] = None
    tools: Annotated[list[PromptMessageTool] | None, Go(validate="omitempty,dive")] = None
    tool_choice: Annotated[ToolChoice | None, Go(validate="omitempty", omitempty=True)] = None
    stop: Annotated[list[str] | None, Go(validate="omitempty")] = None
    json_schema: Annotated[dict[str, Any] | None, Go("JSONSchema", validate="omitempty")] = None
    stream: bool = False


class RequestInvokeLLM(BaseRequestInvokeModel, Credentials, InvokeLLMSchema):
    model_type: Annotated[str, Go(validate="required,model_type,eq=llm")] = ""


class InvokeTextEmbeddingSchema(GoStruct):
    texts: Annotated[list[str] | None, Go(validate="required,dive")] = None
    input_type: Annotated[str, Go(validate="required")] = ""


class RequestInvokeTextEmbedding(BaseRequestInvokeModel, Credentials, InvokeTextEmbeddingSchema):
    model_type: Annotated[str, Go(validate="required,model_type,eq=text-embedding")] = ""


class InvokeRerankSchema(GoStruct):
    query: Annotated[str, Go(validate="required")] = ""
    docs: Annotated[list[str] | None, Go(validate="required,dive")] = None
    score_threshold: float = 0.0
    top_n: Annotated[int, Go("TopN")] = 0


class RequestInvokeRerank(BaseRequestInvokeModel, Credentials, InvokeRerankSchema):
    model_type: Annotated[str, Go(validate="required,model_type,eq=rerank")] = ""


class InvokeMultimodalRerankSchema(GoStruct):
    query: Annotated[MultimodalContent, Go(validate="required")] = MultimodalContent()
    docs: Annotated[list[MultimodalContent] | None, Go(validate="required,dive")] = None
    score_threshold: float = 0.0
    top_n: Annotated[int, Go("TopN")] = 0


class RequestInvokeMultimodalRerank(
    BaseRequestInvokeModel, Credentials, InvokeMultimodalRerankSchema
):
    model_type: Annotated[str, Go(validate="required")] = ""


class InvokeMultimodalEmbeddingSchema(GoStruct):
    documents: Annotated[list[MultimodalContent] | None, Go(validate="required,dive")] = None
    input_type: Annotated[str, Go(validate="required,oneof=document query")] = ""


class RequestInvokeMultimodalEmbedding(
    BaseRequestInvokeModel, Credentials, InvokeMultimodalEmbeddingSchema
):
    model_type: Annotated[str, Go(validate="required")] = ""


class InvokeTTSSchema(GoStruct):
    content_text: Annotated[str, Go(validate="required")] = ""
    voice: Annotated[str, Go(validate="required")] = ""
    tenant_id: Annotated[str, Go("TenantID", validate="required")] = ""


class RequestInvokeTTS(BaseRequestInvokeModel, Credentials, InvokeTTSSchema):
    model_type: Annotated[str, Go(validate="required,model_type,eq=tts")] = ""


class InvokeSpeech2TextSchema(GoStruct):
    file: Annotated[str, Go(validate="required")] = ""
    """Hex of the audio bytes."""


class RequestInvokeSpeech2Text(BaseRequestInvokeModel, Credentials, InvokeSpeech2TextSchema):
    model_type: Annotated[str, Go(validate="required,model_type,eq=speech2text")] = ""


class InvokeModerationSchema(GoStruct):
    text: Annotated[str, Go(validate="required")] = ""


class RequestInvokeModeration(BaseRequestInvokeModel, Credentials, InvokeModerationSchema):
    model_type: Annotated[str, Go(validate="required,model_type,eq=moderation")] = ""


class RequestValidateProviderCredentials(Credentials):
    provider: Annotated[str, Go(validate="required")] = ""


class RequestValidateModelCredentials(BaseRequestInvokeModel, Credentials):
    model_type: Annotated[str, Go(validate="required,model_type")] = ""


class RequestGetTTSModelVoices(BaseRequestInvokeModel, Credentials):
    model_type: Annotated[str, Go(validate="required,model_type,eq=tts")] = ""
    language: Annotated[str, Go(validate="omitempty")] = ""


class RequestGetTextEmbeddingNumTokens(BaseRequestInvokeModel, Credentials):
    model_type: Annotated[str, Go(validate="required,model_type,eq=text-embedding")] = ""
    texts: Annotated[list[str] | None, Go(validate="required,dive")] = None


class RequestGetLLMNumTokens(BaseRequestInvokeModel, Credentials):
    model_type: Annotated[str, Go(validate="required,model_type,eq=llm")] = ""
    prompt_messages: Annotated[list[PromptMessage] | None, Go(validate="omitempty,dive")] = None
    tools: Annotated[list[PromptMessageTool] | None, Go(validate="omitempty,dive")] = None


class RequestGetAIModelSchema(BaseRequestInvokeModel, Credentials):
    model_type: Annotated[str, Go(validate="required,model_type")] = ""


class RequestStartPolling(RequestInvokeLLM):
    pass


class RequestCheckPolling(BaseRequestInvokeModel, Credentials):
    model_type: Annotated[str, Go(validate="required,model_type,eq=llm")] = ""
    plugin_state: Annotated[dict[str, Any] | None, Go(validate="required,min=1")] = None
