"""Prefect blocks for the pipeline's connections and secrets, and the settings resolved from them."""

from blocks.documents import (
    BLOCK_TYPES,
    SOURCE_API,
    WAREHOUSE,
    WEBHOOK,
    apply_blocks,
    blocks_enabled,
    resolve_settings,
)
from blocks.source import SourceApi
from blocks.warehouse import WarehouseConnection
from blocks.webhook import NotificationWebhook

__all__ = [
    "BLOCK_TYPES",
    "SOURCE_API",
    "WAREHOUSE",
    "WEBHOOK",
    "NotificationWebhook",
    "SourceApi",
    "WarehouseConnection",
    "apply_blocks",
    "blocks_enabled",
    "resolve_settings",
]
