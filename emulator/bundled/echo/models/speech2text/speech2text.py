import json
from typing import IO

from dify_plugin import Speech2TextModel
from models.common import EchoCredentials, session_seen


class EchoSpeech2TextModel(EchoCredentials, Speech2TextModel):
    def _invoke(
        self, model: str, credentials: dict, file: IO[bytes], user: str | None = None
    ) -> str:
        size = len(file.read())
        return f"{json.dumps(session_seen(user))}\nheard {size} bytes"
