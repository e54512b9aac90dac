"""THE route table: every dispatch route the emulator serves, one row each.

Routing, binding, the message handed to the plugin, reply checking and the docs all read this
table; a new route is a new row. Paths, access types and actions are the daemon's
(internal/server/controllers/definitions/definitions.go, and the hand-written routes in
internal/server/http_server.go: model polling and agent_strategy/invoke).
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.contract import model, responses
from emulator.contract.families import agent, datasource, dynamic_select, oauth, tool, trigger
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
    reassembles_blobs: bool = False
    """True for agent_strategy/invoke: the daemon joins `blob_chunk` items into one `blob`."""

    @property
    def url_path(self) -> str:
        return DISPATCH_PREFIX + self.path


def _model(path: str, data: type[GoStruct], action: str, response: type[GoStruct]) -> Route:
    return Route(path, data, "model", action, response)


MODEL_ROUTES: tuple[Route, ...] = (
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

FAMILY_ROUTES: tuple[Route, ...] = (
    Route(
        "tool/invoke",
        tool.RequestInvokeTool,
        "tool",
        "invoke_tool",
        tool.ToolResponseChunk,
    ),
    Route(
        "tool/validate_credentials",
        tool.RequestValidateToolCredentials,
        "tool",
        "validate_tool_credentials",
        tool.ValidateCredentialsResult,
    ),
    Route(
        "tool/get_runtime_parameters",
        tool.RequestGetToolRuntimeParameters,
        "tool",
        "get_tool_runtime_parameters",
        tool.GetToolRuntimeParametersResponse,
    ),
    Route(
        "agent_strategy/invoke",
        agent.RequestInvokeAgentStrategy,
        "agent_strategy",
        "invoke_agent_strategy",
        agent.AgentStrategyResponseChunk,
        reassembles_blobs=True,
    ),
    Route(
        "oauth/get_authorization_url",
        oauth.RequestOAuthGetAuthorizationURL,
        "oauth",
        "get_authorization_url",
        oauth.OAuthGetAuthorizationURLResult,
    ),
    Route(
        "oauth/get_credentials",
        oauth.RequestOAuthGetCredentials,
        "oauth",
        "get_credentials",
        oauth.OAuthGetCredentialsResult,
    ),
    Route(
        "oauth/refresh_credentials",
        oauth.RequestOAuthRefreshCredentials,
        "oauth",
        "refresh_credentials",
        oauth.OAuthRefreshCredentialsResult,
    ),
    Route(
        "dynamic_select/fetch_parameter_options",
        dynamic_select.RequestDynamicParameterSelect,
        "dynamic_parameter",
        "fetch_parameter_options",
        dynamic_select.DynamicSelectResult,
    ),
    Route(
        "datasource/validate_credentials",
        datasource.RequestValidateDatasourceCredentials,
        "datasource",
        "validate_datasource_credentials",
        datasource.DataSourceValidateCredentialsResponse,
    ),
    Route(
        "datasource/get_website_crawl",
        datasource.RequestDatasourceGetWebsiteCrawl,
        "datasource",
        "invoke_website_datasource_get_crawl",
        datasource.WebsiteCrawlChunk,
    ),
    Route(
        "datasource/get_online_document_pages",
        datasource.RequestDatasourceGetOnlineDocumentPages,
        "datasource",
        "invoke_online_document_datasource_get_pages",
        datasource.DatasourceGetPagesResponse,
    ),
    Route(
        "datasource/get_online_document_page_content",
        datasource.RequestInvokeOnlineDocumentDatasourceGetContent,
        "datasource",
        "invoke_online_document_datasource_get_page_content",
        datasource.DataSourceResponseChunk,
    ),
    Route(
        "datasource/online_drive_browse_files",
        datasource.DatasourceOnlineDriveBrowseFilesRequest,
        "datasource",
        "invoke_online_drive_browse_files",
        datasource.GetOnlineDriveBrowseFilesResponse,
    ),
    Route(
        "datasource/online_drive_download_file",
        datasource.DatasourceOnlineDriveDownloadFileRequest,
        "datasource",
        "invoke_online_drive_download_file",
        datasource.DataSourceResponseChunk,
    ),
    Route(
        "trigger/invoke_event",
        trigger.TriggerInvokeEventRequest,
        "trigger",
        "invoke_trigger_event",
        trigger.TriggerInvokeEventResponse,
    ),
    Route(
        "trigger/validate_credentials",
        trigger.TriggerValidateProviderCredentialsRequest,
        "trigger",
        "validate_trigger_credentials",
        trigger.TriggerValidateProviderCredentialsResponse,
    ),
    Route(
        "trigger/dispatch_event",
        trigger.TriggerDispatchEventRequest,
        "trigger",
        "dispatch_trigger_event",
        trigger.TriggerDispatchEventResponse,
    ),
    Route(
        "trigger/subscribe",
        trigger.TriggerSubscribeRequest,
        "trigger",
        "subscribe_trigger",
        trigger.TriggerSubscribeResponse,
    ),
    Route(
        "trigger/unsubscribe",
        trigger.TriggerUnsubscribeRequest,
        "trigger",
        "unsubscribe_trigger",
        trigger.TriggerUnsubscribeResponse,
    ),
    Route(
        "trigger/refresh",
        trigger.TriggerRefreshRequest,
        "trigger",
        "refresh_trigger",
        trigger.TriggerRefreshResponse,
    ),
)
"""Tool, agent strategy, OAuth, dynamic select, datasource and trigger, in the daemon's order."""

ROUTES: tuple[Route, ...] = MODEL_ROUTES + FAMILY_ROUTES

ROUTES_BY_PATH: dict[str, Route] = {route.path: route for route in ROUTES}
