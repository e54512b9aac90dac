import json

from dify_plugin import TTSModel
from models.common import EchoCredentials, session_seen


class EchoTTSModel(EchoCredentials, TTSModel):
    def _invoke(
        self,
        model: str,
        tenant_id: str,
        credentials: dict,
        content_text: str,
        voice: str,
        user: str | None = None,
    ) -> bytes:
        return f"{json.dumps(session_seen(user))}\n{content_text}".encode()
