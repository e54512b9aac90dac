import json
from collections.abc import Mapping
from typing import IO

from dify_plugin import Speech2TextModel, get_current_session
from dify_plugin.errors.model import CredentialsValidateFailedError, InvokeError


def _session(user: str | None) -> dict:
    session = get_current_session()
    keys = ("app_id", "conversation_id", "message_id", "endpoint_id", "session_id")
    return {**{key: getattr(session, key, None) for key in keys}, "user_id": user}


class EchoSpeech2TextModel(Speech2TextModel):
    def _invoke(
        self, model: str, credentials: dict, file: IO[bytes], user: str | None = None
    ) -> str:
        size = len(file.read())
        return f"{json.dumps(_session(user))}\nheard {size} bytes"

    def validate_credentials(self, model: str, credentials: Mapping) -> None:
        if credentials.get("api_key") == "bad":
            raise CredentialsValidateFailedError("echo: api_key 'bad' is rejected")

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return {}
