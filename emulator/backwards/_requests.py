"""The daemon's request types for calls back into Dify (internal/core/dify_invocation/types.go).

Before it answers a call, the daemon decodes the plugin's request into the Go struct for
its invoke type (parser.MapToStruct: mapstructure by json names, embedded structs squashed,
no custom UnmarshalJSON), validates it, and sends Dify that struct as JSON. So Dify sees the
struct's fields in their order, zero values for what the plugin left out, and nothing the
struct lacks (the SDK's `model_type`, for one).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from emulator.contract.gojson import GoDecoder, encode_struct, parse_value
from emulator.contract.gotypes import Go, GoStruct, RawJSON, struct_name
from emulator.contract.model import (
    BaseRequestInvokeModel,
    InvokeModerationSchema,
    InvokeMultimodalEmbeddingSchema,
    InvokeMultimodalRerankSchema,
    InvokeRerankSchema,
    InvokeSpeech2TextSchema,
    InvokeTextEmbeddingSchema,
    InvokeTTSSchema,
    PromptMessageTool,
    PromptMessageToolCall,
    ToolChoice,
)
from emulator.contract.validation import validate

TOOL_TYPES = ("builtin", "workflow", "api", "mcp")
PARAMETER_TYPES = "string number bool select array[string] array[number] array[object]"  # the oneof


class BaseInvokeDifyRequest(GoStruct):
    tenant_id: Annotated[str, Go("TenantId")] = ""
    user_id: Annotated[str, Go("UserId")] = ""
    type: str = ""


class PromptMessage(GoStruct):
    """mapstructure fills the fields as they are: `content` stays what the plugin sent."""

    role: Annotated[str, Go(validate="required,prompt_message_role")] = ""
    content: Annotated[Any, Go(validate="required,prompt_message_content")] = None
    name: str = ""
    tool_calls: Annotated[list[PromptMessageToolCall] | None, Go(validate="dive")] = None
    tool_call_id: Annotated[str, Go("ToolCallId")] = ""
    opaque_body: Annotated[RawJSON | None, Go(omitempty=True)] = None


class InvokeLLMSchema(GoStruct):
    mode: Annotated[str, Go(validate="required")] = ""
    completion_params: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None
    prompt_messages: Annotated[list[PromptMessage] | None, Go(validate="omitempty")] = None
    tools: Annotated[list[PromptMessageTool] | None, Go(validate="omitempty,dive")] = None
    tool_choice: Annotated[ToolChoice | None, Go(validate="omitempty", omitempty=True)] = None
    stop: Annotated[list[str] | None, Go(validate="omitempty")] = None
    stream: bool = False


class InvokeLLMRequest(BaseInvokeDifyRequest, BaseRequestInvokeModel, InvokeLLMSchema):
    pass


class InvokeLLMWithStructuredOutputRequest(
    BaseInvokeDifyRequest, BaseRequestInvokeModel, InvokeLLMSchema
):
    structured_output_schema: Annotated[dict[str, Any] | None, Go(validate="required")] = None


class InvokeTextEmbeddingRequest(
    BaseInvokeDifyRequest, BaseRequestInvokeModel, InvokeTextEmbeddingSchema
):
    pass


class InvokeMultimodalEmbeddingRequest(
    BaseInvokeDifyRequest, BaseRequestInvokeModel, InvokeMultimodalEmbeddingSchema
):
    pass


class InvokeRerankRequest(BaseInvokeDifyRequest, BaseRequestInvokeModel, InvokeRerankSchema):
    pass


class InvokeMultimodalRerankRequest(
    BaseInvokeDifyRequest, BaseRequestInvokeModel, InvokeMultimodalRerankSchema
):
    pass


class _TTSCaller(GoStruct):
    """InvokeTTSRequest's own leading fields (it has no tenant_id of its own)."""

    user_id: Annotated[str, Go("UserId")] = ""
    type: str = ""


class InvokeTTSRequest(_TTSCaller, BaseRequestInvokeModel, InvokeTTSSchema):
    pass


class InvokeSpeech2TextRequest(
    BaseInvokeDifyRequest, BaseRequestInvokeModel, InvokeSpeech2TextSchema
):
    pass


class InvokeModerationRequest(
    BaseInvokeDifyRequest, BaseRequestInvokeModel, InvokeModerationSchema
):
    pass


class _ToolFields(GoStruct):
    """InvokeToolRequest's own fields, which come between its two embedded structs."""

    tool_type: str = ""
    credential_id: str = ""
    credential_type: Annotated[str, Go(omitempty=True)] = ""


class InvokeToolSchema(GoStruct):
    provider: Annotated[str, Go(validate="required")] = ""
    tool: Annotated[str, Go(validate="required")] = ""
    tool_parameters: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None


class InvokeToolRequest(BaseInvokeDifyRequest, _ToolFields, InvokeToolSchema):
    @staticmethod
    def go_struct_errors(value: dict[str, Any]) -> list[tuple[str, str, str]]:
        """ToolType's `required,tool_type` tags, named as the validator names them."""
        if not value["tool_type"]:
            return [("ToolType", "ToolType", "required")]
        if value["tool_type"] not in TOOL_TYPES:
            return [("ToolType", "ToolType", "tool_type")]
        return []


class InvokeAppSchema(GoStruct):
    app_id: Annotated[str, Go(validate="required")] = ""
    inputs: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None
    query: Annotated[str, Go(validate="omitempty")] = ""
    response_mode: str = ""
    conversation_id: Annotated[str, Go(validate="omitempty")] = ""
    user: Annotated[str, Go(validate="omitempty")] = ""


class InvokeAppRequest(BaseInvokeDifyRequest, InvokeAppSchema):
    pass


class ModelConfig(GoStruct):
    provider: Annotated[str, Go(validate="required")] = ""
    name: Annotated[str, Go(validate="required")] = ""
    mode: Annotated[str, Go(validate="required")] = ""
    completion_params: Annotated[dict[str, Any] | None, Go(validate="omitempty")] = None


class _Parameter(GoStruct):
    name: Annotated[str, Go(validate="required")] = ""
    type: Annotated[str, Go(validate=f"required,oneof={PARAMETER_TYPES}")] = ""
    options: Annotated[list[str] | None, Go(validate="omitempty")] = None
    description: Annotated[str, Go(validate="omitempty")] = ""
    required: Annotated[bool, Go(validate="omitempty")] = False


class InvokeParameterExtractorRequest(BaseInvokeDifyRequest):
    parameters: Annotated[list[_Parameter] | None, Go(validate="required,dive")] = None
    model: Annotated[ModelConfig, Go(validate="required")] = ModelConfig()
    instruction: Annotated[str, Go(validate="omitempty")] = ""
    query: Annotated[str, Go(validate="required")] = ""


class _Class(GoStruct):
    id: Annotated[str, Go("ID", validate="required")] = ""
    name: Annotated[str, Go(validate="required")] = ""


class InvokeQuestionClassifierRequest(BaseInvokeDifyRequest):
    classes: Annotated[list[_Class] | None, Go(validate="required,dive")] = None
    model: Annotated[ModelConfig, Go(validate="required")] = ModelConfig()
    instruction: Annotated[str, Go(validate="omitempty")] = ""
    query: Annotated[str, Go(validate="required")] = ""


class InvokeSummarySchema(GoStruct):
    text: Annotated[str, Go(validate="required")] = ""
    instruction: Annotated[str, Go(validate="omitempty")] = ""


class InvokeSummaryRequest(BaseInvokeDifyRequest, InvokeSummarySchema):
    pass


class UploadFileRequest(BaseInvokeDifyRequest):
    filename: Annotated[str, Go(validate="required")] = ""
    mimetype: Annotated[str, Go("MimeType", validate="required")] = ""


class FetchAppRequest(BaseInvokeDifyRequest):
    app_id: Annotated[str, Go(validate="required")] = ""


REQUEST_TYPES: dict[str, type[GoStruct]] = {
    "tool": InvokeToolRequest,
    "llm": InvokeLLMRequest,
    "llm_structured_output": InvokeLLMWithStructuredOutputRequest,
    "text_embedding": InvokeTextEmbeddingRequest,
    "multimodal_embedding": InvokeMultimodalEmbeddingRequest,
    "rerank": InvokeRerankRequest,
    "multimodal_rerank": InvokeMultimodalRerankRequest,
    "tts": InvokeTTSRequest,
    "speech2text": InvokeSpeech2TextRequest,
    "moderation": InvokeModerationRequest,
    "app": InvokeAppRequest,
    "node_parameter_extractor": InvokeParameterExtractorRequest,
    "node_question_classifier": InvokeQuestionClassifierRequest,
    "system_summary": InvokeSummaryRequest,
    "upload_file": UploadFileRequest,
    "fetch_app": FetchAppRequest,
}


def go_request(invoke_type: str, request: dict[str, Any]) -> tuple[str, str | None]:
    """The request as the daemon sends it to Dify (Go JSON text), or why it refuses it
    (`unmarshal backwards invoke request failed: ...`)."""
    cls = REQUEST_TYPES[invoke_type]
    decoder = GoDecoder()
    value = decoder.decode_document(cls, parse_value(json.dumps(request)))
    if decoder.error is not None:
        return "", f"unmarshal backwards invoke request failed: error decoding map: {decoder.error}"
    errors = validate(cls, value, struct_name(cls))
    if errors:
        problem = "error validating struct: " + "\n".join(errors)
        return "", f"unmarshal backwards invoke request failed: {problem}"
    return encode_struct(cls, value), None
