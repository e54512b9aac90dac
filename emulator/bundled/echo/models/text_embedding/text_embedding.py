import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal

from dify_plugin import TextEmbeddingModel, get_current_session
from dify_plugin.entities.model import EmbeddingInputType
from dify_plugin.entities.model.text_embedding import (
    EmbeddingUsage,
    MultiModalContent,
    MultiModalEmbeddingResult,
    TextEmbeddingResult,
)
from dify_plugin.errors.model import CredentialsValidateFailedError, InvokeError


def _session(user: str | None) -> dict:
    session = get_current_session()
    keys = ("app_id", "conversation_id", "message_id", "endpoint_id", "session_id")
    return {**{key: getattr(session, key, None) for key in keys}, "user_id": user}


def _vector(text: str) -> list[float]:
    # (byte + 0.5) / 256 is exact in binary and never 0 or 1, so it prints
    # the same in every JSON encoder.
    digest = hashlib.sha256(text.encode()).digest()
    return [(byte + 0.5) / 256 for byte in digest[:4]]


def _usage(texts: list[str]) -> EmbeddingUsage:
    tokens = sum(len(text.split()) for text in texts)
    zero = Decimal(0)
    return EmbeddingUsage(
        tokens=tokens,
        total_tokens=tokens,
        unit_price=zero,
        price_unit=zero,
        total_price=zero,
        currency="USD",
        latency=0.0,
    )


class EchoTextEmbeddingModel(TextEmbeddingModel):
    def _invoke(
        self,
        model: str,
        credentials: dict,
        texts: list[str],
        user: str | None = None,
        input_type: EmbeddingInputType = EmbeddingInputType.DOCUMENT,
    ) -> TextEmbeddingResult:
        return TextEmbeddingResult(
            model=f"{model} {json.dumps(_session(user))}",
            embeddings=[_vector(text) for text in texts],
            usage=_usage(texts),
        )

    def _invoke_multimodal(
        self,
        model: str,
        credentials: dict,
        documents: list[MultiModalContent],
        user: str | None = None,
        input_type: EmbeddingInputType = EmbeddingInputType.DOCUMENT,
    ) -> MultiModalEmbeddingResult:
        contents = [document.content for document in documents]
        return MultiModalEmbeddingResult(
            model=f"{model} {json.dumps(_session(user))}",
            embeddings=[_vector(content) for content in contents],
            usage=_usage(contents),
        )

    def get_num_tokens(
        self, model: str, credentials: dict, texts: list[str]
    ) -> list[int]:
        return [len(text.split()) for text in texts]

    def validate_credentials(self, model: str, credentials: Mapping) -> None:
        if credentials.get("api_key") == "bad":
            raise CredentialsValidateFailedError("echo: api_key 'bad' is rejected")

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return {}
