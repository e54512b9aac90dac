import re

from dify_plugin import ModerationModel
from models.common import EchoCredentials


class EchoModerationModel(EchoCredentials, ModerationModel):
    def _invoke(
        self, model: str, credentials: dict, text: str, user: str | None = None
    ) -> bool:
        return re.search(r"\bforbidden\b", text, re.IGNORECASE) is not None
