import re
from collections.abc import Mapping

from dify_plugin import ModerationModel
from dify_plugin.errors.model import CredentialsValidateFailedError, InvokeError


class EchoModerationModel(ModerationModel):
    def _invoke(
        self, model: str, credentials: dict, text: str, user: str | None = None
    ) -> bool:
        return re.search(r"\bforbidden\b", text, re.IGNORECASE) is not None

    def validate_credentials(self, model: str, credentials: Mapping) -> None:
        if credentials.get("api_key") == "bad":
            raise CredentialsValidateFailedError("echo: api_key 'bad' is rejected")

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return {}
