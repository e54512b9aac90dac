"""THE route table: every dispatch route the emulator serves, one row each.

Routing, binding, the message handed to the plugin, reply checking and the docs all read this
table; a new route is a new row. Paths, access types and actions are the daemon's
(internal/server/controllers/definitions/definitions.go and the hand-written polling routes).
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.contract import model, responses
from emulator.contract.gotypes import GoStruct

DISPATCH_PREFIX = "/plugin/{tenant_id}/dispatch/"


@dataclass(frozen=True)
class Route:
    path: str
    """After `/plugin/{tenant_id}/dispatch/`."""
    data_model: type[GoStruct]
    access_type: str
    action: str
    response_model: type[GoStruct]
    streamed: bool = True
    """False for the polling routes: plain JSON holding the plugin's last item."""

    @property
    def url_path(self) -> str:
        return DISPATCH_PREFIX + self.path


def _model(path: str, data: type[GoStruct], action: str, response: type[GoStruct]) -> Route:
    return Route(path, data, "model", action, response)


ROUTES: tuple[Route, ...] = (
    _model("llm/invoke", model.RequestInvokeLLM, "invoke_llm", responses.LLMResultChunk),
    _model(
        "llm/num_tokens",
        model.RequestGetLLMNumTokens,
        "get_llm_num_tokens",
        responses.LLMGetNumTokensResponse,
    ),
    _model(
        "text_embedding/invoke",
        model.RequestInvokeTextEmbedding,
        "invoke_text_embedding",
        responses.TextEmbeddingResult,
    ),
    _model(
        "multimodal_embedding/invoke",
        model.RequestInvokeMultimodalEmbedding,
        "invoke_multimodal_embedding",
        responses.MultimodalEmbeddingResult,
    ),
    _model(
        "text_embedding/num_tokens",
        model.RequestGetTextEmbeddingNumTokens,
        "get_text_embedding_num_tokens",
        responses.GetTextEmbeddingNumTokensResponse,
    ),
    _model("rerank/invoke", model.RequestInvokeRerank, "invoke_rerank", responses.RerankResult),
    _model(
        "multimodal_rerank/invoke",
        model.RequestInvokeMultimodalRerank,
        "invoke_multimodal_rerank",
        responses.MultimodalRerankResult,
    ),
    _model("tts/invoke", model.RequestInvokeTTS, "invoke_tts", responses.TTSResult),
    _model(
        "tts/model/voices",
        model.RequestGetTTSModelVoices,
        "get_tts_model_voices",
        responses.GetTTSVoicesResponse,
    ),
    _model(
        "speech2text/invoke",
        model.RequestInvokeSpeech2Text,
        "invoke_speech2text",
        responses.Speech2TextResult,
    ),
    _model(
        "moderation/invoke",
        model.RequestInvokeModeration,
        "invoke_moderation",
        responses.ModerationResult,
    ),
    _model(
        "model/validate_provider_credentials",
        model.RequestValidateProviderCredentials,
        "validate_provider_credentials",
        responses.ValidateCredentialsResult,
    ),
    _model(
        "model/validate_model_credentials",
        model.RequestValidateModelCredentials,
        "validate_model_credentials",
        responses.ValidateCredentialsResult,
    ),
    _model(
        "model/schema",
        model.RequestGetAIModelSchema,
        "get_ai_model_schemas",
        responses.GetModelSchemasResponse,
    ),
    Route(
        "model/polling/start",
        model.RequestStartPolling,
        "model",
        "start_polling",
        responses.ModelPollingResult,
        streamed=False,
    ),
    Route(
        "model/polling/check",
        model.RequestCheckPolling,
        "model",
        "check_polling",
        responses.ModelPollingResult,
        streamed=False,
    ),
)

ROUTES_BY_PATH: dict[str, Route] = {route.path: route for route in ROUTES}
