import hashlib
import json
import time
from collections.abc import Generator, Mapping

from dify_plugin import LargeLanguageModel
from dify_plugin.entities.model.llm import (
    LLMPollingResult,
    LLMPollingStatus,
    LLMResult,
    LLMResultChunk,
    LLMResultChunkDelta,
    LLMUsage,
)
from dify_plugin.entities.model.message import (
    AssistantPromptMessage,
    PromptMessage,
    PromptMessageRole,
    PromptMessageTool,
)
from dify_plugin.errors.model import (
    InvokeError,
    InvokeRateLimitError,
)
from models.common import EchoCredentials, session_seen


def _reply_words(prompt_messages: list[PromptMessage], chunks: int | None) -> list[str]:
    users = [m for m in prompt_messages if m.role == PromptMessageRole.USER]
    words = users[-1].get_text_content().split() if users else []
    if chunks is None:
        return words

    pool = words or [f"w{i}" for i in range(chunks)]
    return [pool[i % len(pool)] for i in range(chunks)]


def _chunk(
    model: str,
    text: str,
    usage: LLMUsage | None = None,
    finish_reason: str | None = None,
) -> LLMResultChunk:
    message = AssistantPromptMessage(content=text)
    delta = LLMResultChunkDelta(
        index=0, message=message, usage=usage, finish_reason=finish_reason
    )
    return LLMResultChunk(model=model, delta=delta)


def _pause(delay_ms: int) -> None:
    if delay_ms:
        time.sleep(delay_ms / 1000)


class EchoLargeLanguageModel(EchoCredentials, LargeLanguageModel):
    def _invoke(
        self,
        model: str,
        credentials: dict,
        prompt_messages: list[PromptMessage],
        model_parameters: dict,
        tools: list[PromptMessageTool] | None = None,
        stop: list[str] | None = None,
        stream: bool = True,
        user: str | None = None,
    ) -> LLMResult | Generator[LLMResultChunk, None, None]:
        words = _reply_words(prompt_messages, model_parameters.get("chunks"))
        head = json.dumps(session_seen(user)) + "\n"
        if stream:
            return self._stream(
                model, credentials, prompt_messages, head, words, model_parameters
            )

        if "raise_after" in model_parameters:
            raise InvokeRateLimitError("echo: rate limited")

        usage = self._usage(model, credentials, prompt_messages, len(words))
        message = AssistantPromptMessage(content=head + " ".join(words))
        return LLMResult(model=model, message=message, usage=usage)

    def _stream(
        self,
        model: str,
        credentials: dict,
        prompt_messages: list[PromptMessage],
        head: str,
        words: list[str],
        params: dict,
    ) -> Generator[LLMResultChunk, None, None]:
        raise_after = params.get("raise_after")
        delay_ms = params.get("delay_ms", 0)
        if raise_after is not None:
            words = words[:raise_after]

        yield _chunk(model, head)
        for i, word in enumerate(words):
            _pause(delay_ms)
            yield _chunk(model, word if i == 0 else " " + word)
        if raise_after is not None:
            raise InvokeRateLimitError(f"echo: rate limited after {len(words)} chunks")

        _pause(delay_ms)
        usage = self._usage(model, credentials, prompt_messages, len(words))
        yield _chunk(model, "", usage=usage, finish_reason="stop")

    def _usage(
        self,
        model: str,
        credentials: dict,
        prompt_messages: list[PromptMessage],
        completion_tokens: int,
    ) -> LLMUsage:
        prompt_tokens = self.get_num_tokens(model, credentials, prompt_messages)
        usage = self._calc_response_usage(
            model, credentials, prompt_tokens, completion_tokens
        )
        # Wall-clock latency would make every run's frames differ; tests compare them.
        usage.latency = 0.0
        return usage

    def _start_polling(
        self,
        model: str,
        credentials: dict,
        prompt_messages: list[PromptMessage],
        model_parameters: dict,
        tools: list[PromptMessageTool] | None = None,
        stop: list[str] | None = None,
        stream: bool = False,
        user: str | None = None,
        *,
        json_schema: Mapping | None = None,
    ) -> LLMPollingResult:
        text = " ".join(_reply_words(prompt_messages, None))
        job = "job-" + hashlib.sha256(text.encode()).hexdigest()[:12]
        state = {"job": job, "polls": 0, "app_id": session_seen(user)["app_id"]}
        return LLMPollingResult(
            status=LLMPollingStatus.RUNNING,
            plugin_state=state,
            next_check_after_seconds=1,
        )

    def _check_polling(
        self,
        model: str,
        credentials: dict,
        plugin_state: dict,
        user: str | None = None,
    ) -> LLMPollingResult:
        echo = {"plugin_state": plugin_state, "session": session_seen(user)}
        message = AssistantPromptMessage(content=json.dumps(echo))
        result = LLMResult(model=model, message=message, usage=LLMUsage.empty_usage())
        return LLMPollingResult(status=LLMPollingStatus.SUCCEEDED, result=result)

    def get_num_tokens(
        self,
        model: str,
        credentials: dict,
        prompt_messages: list[PromptMessage],
        tools: list[PromptMessageTool] | None = None,
    ) -> int:
        return sum(len(m.get_text_content().split()) for m in prompt_messages)

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        # The SDK re-wraps errors raised before streaming starts by this table.
        return {InvokeRateLimitError: [InvokeRateLimitError]}
