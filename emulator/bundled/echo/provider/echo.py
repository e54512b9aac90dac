from dify_plugin import ModelProvider
from dify_plugin.errors.model import CredentialsValidateFailedError


class EchoProvider(ModelProvider):
    def validate_provider_credentials(self, credentials: dict) -> None:
        if credentials.get("api_key") == "bad":
            raise CredentialsValidateFailedError("echo: api_key 'bad' is rejected")
