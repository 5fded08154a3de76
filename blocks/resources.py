"""What a run works with: the non-secret settings and the blocks for the warehouse, the source and the webhook."""

from dataclasses import dataclass

from prefect_sqlalchemy import SqlAlchemyConnector

from blocks.source import SourceApi
from blocks.warehouse import Warehouse
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

    `settings` holds no secret: the warehouse's credentials and the webhook's URL and key live in the blocks.
    """

    settings: Settings
    source: SourceApi
    webhook: NotificationWebhook | None
    configured_warehouse: Warehouse | None

    @classmethod
    def build(
        cls,
        settings: Settings,
        warehouse: SqlAlchemyConnector | None = None,
        source: SourceApi | None = None,
        webhook: NotificationWebhook | None = None,
    ) -> "Resources":
        """The given block documents, and for each one missing the block that `settings` (the environment) describes.

        The warehouse's engine is made once, on first use, and serves every step of the run.
        """
        limited = None
        if warehouse is None and settings.database_url is not None:
            limited = Warehouse.from_url(settings.database_url)
        elif warehouse is not None:
            limited = Warehouse(warehouse)
        if limited is not None:
            limited = limited.with_session_limits(settings.lock_timeout_seconds, settings.statement_timeout_seconds)
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
        return cls(settings=plain, source=source, webhook=webhook, configured_warehouse=limited)

    @property
    def warehouse(self) -> Warehouse:
        """The configured warehouse; a run never starts one of its own."""
        if self.configured_warehouse is None:
            raise WarehouseNotConfigured(
                f"no warehouse is configured: set PIPELINE_DATABASE_URL, save the {WAREHOUSE} block"
                " (`pipeline deploy` writes it from PIPELINE_DATABASE_URL), or name a SqlAlchemyConnector"
                " document in PIPELINE_WAREHOUSE_BLOCK"
            )
        return self.configured_warehouse
