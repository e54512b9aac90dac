"""What every echo model shares: the session it saw, and the one credential it refuses."""

from collections.abc import Mapping

from dify_plugin import get_current_session
from dify_plugin.errors.model import CredentialsValidateFailedError, InvokeError

SESSION_KEYS = ("app_id", "conversation_id", "message_id", "endpoint_id", "session_id")


def session_seen(user: str | None) -> dict:
    """The session the SDK gave this call (None values without one), and the user."""
    session = get_current_session()
    return {
        **{key: getattr(session, key, None) for key in SESSION_KEYS},
        "user_id": user,
    }


class EchoCredentials:
    """Mixed in before the SDK's model class: any key but "bad" is accepted."""

    def validate_credentials(self, model: str, credentials: Mapping) -> None:
        if credentials.get("api_key") == "bad":
            raise CredentialsValidateFailedError("echo: api_key 'bad' is rejected")

    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return {}
