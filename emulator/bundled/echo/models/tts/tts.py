import json
from collections.abc import Mapping

from dify_plugin import TTSModel, get_current_session
from dify_plugin.errors.model import CredentialsValidateFailedError, InvokeError


def _session(user: str | None) -> dict:
    session = get_current_session()
    keys = ("app_id", "conversation_id", "message_id", "endpoint_id", "session_id")
    return {**{key: getattr(session, key, None) for key in keys}, "user_id": user}


class EchoTTSModel(TTSModel):
    def _invoke(
        self,
        model: str,
        tenant_id: str,
        credentials: dict,
        content_text: str,
        voice: str,
        user: str | None = None,
    ) -> bytes:
        return f"{json.dumps(_session(user))}\n{content_text}".encode()

    def validate_credentials(self, model: str, credentials: Mapping) -> None:
        if credentials.get("api_key") == "bad":
            raise CredentialsValidateFailedError("echo: api_key 'bad' is rejected")

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return {}
