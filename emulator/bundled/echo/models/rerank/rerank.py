import json
from collections.abc import Sequence

from dify_plugin import RerankModel
from dify_plugin.entities.model.rerank import (
    MultiModalRerankResult,
    RerankDocument,
    RerankResult,
)
from dify_plugin.entities.model.text_embedding import MultiModalContent
from models.common import EchoCredentials, session_seen


def _rank(
    query: str, docs: list[str], score_threshold: float | None, top_n: int | None
) -> list[RerankDocument]:
    terms = set(query.lower().split())
    ranked = []
    for index, doc in enumerate(docs):
        shared = terms & set(doc.lower().split())
        score = len(shared) / len(terms) if terms else 0.0
        if score_threshold is None or score >= score_threshold:
            ranked.append(RerankDocument(index=index, text=doc, score=score))

    ranked.sort(key=lambda doc: -doc.score)
    # The daemon turns Dify's null top_n into 0, so 0 means "no limit" here.
    return ranked[:top_n] if top_n else ranked


class EchoRerankModel(EchoCredentials, RerankModel):
    def _invoke(
        self,
        model: str,
        credentials: dict,
        query: str,
        docs: list[str],
        score_threshold: float | None = None,
        top_n: int | None = None,
        user: str | None = None,
    ) -> RerankResult:
        return RerankResult(
            model=f"{model} {json.dumps(session_seen(user))}",
            docs=_rank(query, docs, score_threshold, top_n),
        )

    def _invoke_multimodal(
        self,
        model: str,
        credentials: dict,
        query: MultiModalContent,
        docs: Sequence[MultiModalContent],
        score_threshold: float | None = None,
        top_n: int | None = None,
        user: str | None = None,
    ) -> MultiModalRerankResult:
        contents = [doc.content for doc in docs]
        return MultiModalRerankResult(
            model=f"{model} {json.dumps(session_seen(user))}",
            docs=_rank(query.content, contents, score_threshold, top_n),
        )
