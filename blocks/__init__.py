"""Prefect blocks for the pipeline's connections and secrets, and the resources a run resolves from them."""

from blocks.documents import (
    BLOCK_TYPES,
    SOURCE_API,
    WAREHOUSE,
    WEBHOOK,
    apply_blocks,
    blocks_enabled,
    load_warehouse,
    release_run_resources,
    resolve_resources,
    run_resources,
    warehouse_configured,
)
from blocks.resources import Resources, WarehouseNotConfigured
from blocks.source import SourceApi
from blocks.warehouse import Warehouse, connector_from_url
from blocks.webhook import NotificationWebhook

__all__ = [
    "BLOCK_TYPES",
    "SOURCE_API",
    "WAREHOUSE",
    "WEBHOOK",
    "NotificationWebhook",
    "Resources",
    "SourceApi",
    "Warehouse",
    "connector_from_url",
    "load_warehouse",
    "WarehouseNotConfigured",
    "apply_blocks",
    "blocks_enabled",
    "release_run_resources",
    "resolve_resources",
    "run_resources",
    "warehouse_configured",
]
