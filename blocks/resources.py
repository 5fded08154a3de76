"""What a run works with: the non-secret settings and the blocks for the warehouse, the source and the webhook."""

from dataclasses import dataclass

from blocks.source import SourceApi
from blocks.warehouse import WarehouseConnection
from blocks.webhook import NotificationWebhook
from pipeline.settings import Settings
from pipeline.warehouse import WarehouseError

WAREHOUSE = "weather-warehouse"
SOURCE_API = "weather-source-api"
WEBHOOK = "weather-webhook"


class WarehouseNotConfigured(WarehouseError):
    """Neither PIPELINE_DATABASE_URL nor the warehouse block says where the warehouse is."""


@dataclass(frozen=True)
class Resources:
    """Built once where a run or command starts; steps receive it (or one of its blocks), never a DSN.

    `settings` holds no secret: the warehouse DSN and the webhook's URL and key live in the blocks.
    """

    settings: Settings
    source: SourceApi
    webhook: NotificationWebhook | None
    configured_warehouse: WarehouseConnection | None

    @classmethod
    def build(
        cls,
        settings: Settings,
        warehouse: WarehouseConnection | None = None,
        source: SourceApi | None = None,
        webhook: NotificationWebhook | None = None,
    ) -> "Resources":
        """The given block documents, and for each one missing the block that `settings` (the environment) describes."""
        if warehouse is None and settings.database_url is not None:
            warehouse = WarehouseConnection(database_url=settings.database_url)
        if warehouse is not None:
            warehouse = warehouse.with_session_limits(settings.lock_timeout_seconds, settings.statement_timeout_seconds)
        source = source or SourceApi(
            base_url=settings.source_url,
            timeout_seconds=settings.http_timeout_seconds,
            rate_limit=settings.source_rate_limit,
        )
        if webhook is None and settings.webhook_url is not None:
            webhook = NotificationWebhook(url=settings.webhook_url, signing_key=settings.webhook_secret)
        # The source's values replace the environment's, so settings and block never disagree.
        plain = settings.model_copy(
            update={
                "database_url": None,
                "webhook_url": None,
                "webhook_secret": None,
                "source_url": source.base_url,
                "http_timeout_seconds": source.timeout_seconds,
                "source_rate_limit": source.rate_limit,
            }
        )
        return cls(settings=plain, source=source, webhook=webhook, configured_warehouse=warehouse)

    @property
    def warehouse(self) -> WarehouseConnection:
        """The configured warehouse; a run never starts one of its own."""
        if self.configured_warehouse is None:
            raise WarehouseNotConfigured(
                f"no warehouse is configured: set PIPELINE_DATABASE_URL, or save the {WAREHOUSE} block"
                " (`pipeline deploy` writes it from PIPELINE_DATABASE_URL)"
            )
        return self.configured_warehouse
