"""Dify's answers as the daemon reads them: each is decoded as the Go type the daemon expects
for the invoke type, validated unless it is a map, and re-encoded before the plugin gets it
(calldify.Request / StreamResponse, then json.Marshal in WriteResponse)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from emulator.backwards._calls import go_map
from emulator.contract.families.tool import ToolResponseChunk
from emulator.contract.gojson import GoDecoder, encode_any, encode_struct, parse_value
from emulator.contract.gotypes import Go, GoStruct, struct_name
from emulator.contract.responses import (
    LLMResultChunk,
    ModerationResult,
    MultimodalEmbeddingResult,
    MultimodalRerankResult,
    RerankResult,
    Speech2TextResult,
    TextEmbeddingResult,
    TTSResult,
)
from emulator.contract.validation import validate


class InvokeNodeResponse(GoStruct):
    process_data: Annotated[dict[str, Any] | None, Go(validate="required")] = None
    outputs: Annotated[dict[str, Any] | None, Go(validate="required")] = None
    inputs: Annotated[dict[str, Any] | None, Go(validate="required")] = None


class InvokeSummaryResponse(GoStruct):
    summary: str = ""


class UploadFileResponse(GoStruct):
    url: Annotated[str, Go("URL")] = ""


ANSWER_TYPES: dict[str, type[GoStruct] | None] = {
    "tool": ToolResponseChunk,
    "llm": LLMResultChunk,
    "llm_structured_output": None,
    "text_embedding": TextEmbeddingResult,
    "multimodal_embedding": MultimodalEmbeddingResult,
    "rerank": RerankResult,
    "multimodal_rerank": MultimodalRerankResult,
    "tts": TTSResult,
    "speech2text": Speech2TextResult,
    "moderation": ModerationResult,
    "app": None,
    "node_parameter_extractor": InvokeNodeResponse,
    "node_question_classifier": InvokeNodeResponse,
    "system_summary": InvokeSummaryResponse,
    "upload_file": UploadFileResponse,
    "fetch_app": None,
}
"""None: a map[string]any, passed on with its keys sorted and never validated.
(llm_structured_output is a struct in the daemon; the emulator passes it on as a map.)"""


@dataclass(frozen=True)
class GoAnswer:
    """One answer as the daemon would pass it on, or why it would not."""

    text: str = ""
    undecodable: str | None = None
    """json.Unmarshal refused it (a streamed chunk is then skipped, a JSON answer fails)."""
    invalid: str | None = None
    """The validator refused it: `validate request failed: ...`."""


def go_answer(invoke_type: str, data: Any) -> GoAnswer:
    cls = ANSWER_TYPES.get(invoke_type)
    if cls is None:
        if not isinstance(data, dict):
            kind = type(data).__name__
            return GoAnswer(undecodable=f"json: cannot unmarshal {kind} into a map")
        return GoAnswer(encode_any(go_map(data)))
    decoder = GoDecoder()
    value = decoder.decode_document(cls, parse_value(json.dumps(data)))
    if decoder.error is not None:
        return GoAnswer(undecodable=decoder.error)
    errors = validate(cls, value, struct_name(cls))
    if errors:
        return GoAnswer(invalid="validate request failed: " + "\n".join(errors))
    return GoAnswer(encode_struct(cls, value))
