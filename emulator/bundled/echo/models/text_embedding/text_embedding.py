import hashlib
import json
from decimal import Decimal

from dify_plugin import TextEmbeddingModel
from dify_plugin.entities.model import EmbeddingInputType
from dify_plugin.entities.model.text_embedding import (
    EmbeddingUsage,
    MultiModalContent,
    MultiModalEmbeddingResult,
    TextEmbeddingResult,
)
from models.common import EchoCredentials, session_seen


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


class EchoTextEmbeddingModel(EchoCredentials, TextEmbeddingModel):
    def _invoke(
        self,
        model: str,
        credentials: dict,
        texts: list[str],
        user: str | None = None,
        input_type: EmbeddingInputType = EmbeddingInputType.DOCUMENT,
    ) -> TextEmbeddingResult:
        return TextEmbeddingResult(
            model=f"{model} {json.dumps(session_seen(user))}",
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
            model=f"{model} {json.dumps(session_seen(user))}",
            embeddings=[_vector(content) for content in contents],
            usage=_usage(contents),
        )

    def get_num_tokens(
        self, model: str, credentials: dict, texts: list[str]
    ) -> list[int]:
        return [len(text.split()) for text in texts]
