"""The notification webhook block: where run notifications go and the key that signs them."""

import binascii

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator

from pipeline import notify


class NotificationWebhook(Block):
    """An HTTPS endpoint for run notifications, signed per Standard Webhooks when a key is set."""

    # Validation errors must not echo the input: it is a secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    _block_type_name = "Notification Webhook"
    _description = "Where pipeline notifications are POSTed, and the whsec_ key that signs them."

    # Webhook URLs often carry a token in the path or query (Slack, Teams), so the URL is a secret too.
    url: SecretStr = Field(description="Endpoint that receives the JSON notifications.")
    signing_key: SecretStr | None = Field(
        default=None, description="Standard Webhooks secret, whsec_<base64>; unset sends unsigned notifications."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @field_validator("signing_key")
    @classmethod
    def _whsec_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        try:
            # The key signing will use: a key that lost its base64 padding is accepted, as signing accepts it.
            valid = secret.startswith("whsec_") and bool(notify.signing_key(secret))
        except binascii.Error:
            valid = False
        if not valid:
            raise ValueError("signing_key must be whsec_ followed by base64 (a Standard Webhooks secret)")
        return value

    def deliver(self, event: dict, msg_id: str) -> bool:
        """POST one notification event, signed when a key is set, retrying what may pass; returns whether it was
        accepted."""
        return notify.deliver(self.url.get_secret_value(), event, msg_id, self._key())

    def post(self, body: bytes, msg_id: str) -> notify.Attempt:
        """POST a stored notification body once, signed when a key is set."""
        return notify.post(self.url.get_secret_value(), body, msg_id, self._key())

    def _key(self) -> str | None:
        return self.signing_key.get_secret_value() if self.signing_key else None
