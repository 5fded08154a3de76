"""What the tests share: polling for a condition, and a local webhook receiver."""

from tests.support.polling import poll_until
from tests.support.webhooks import Delivery, WebhookReceiver

__all__ = ["Delivery", "WebhookReceiver", "poll_until"]
