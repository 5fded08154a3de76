"""The block documents deployments read connections and secrets from: written from the settings, resolved into
`Resources`."""

import logging
import os
import threading

import httpx
from prefect import runtime
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect_sqlalchemy import SqlAlchemyConnector

from blocks.resources import SOURCE_API, WAREHOUSE, WEBHOOK, Resources, WarehouseNotConfigured
from blocks.source import SourceApi
from blocks.warehouse import Warehouse, connector_from_url
from blocks.webhook import NotificationWebhook
from pipeline.settings import Settings, current_settings

BLOCK_TYPES = (SqlAlchemyConnector, SourceApi, NotificationWebhook)
FROM_BLOCKS = "PIPELINE_SETTINGS_FROM_BLOCKS"
# Which settings each document provides, in the order they are reported.
PROVIDES = {
    WAREHOUSE: ("database_url",),
    SOURCE_API: ("source_url", "http_timeout_seconds", "source_rate_limit"),
    WEBHOOK: ("webhook_url", "webhook_secret"),
}

logger = logging.getLogger("pipeline.blocks")


def blocks_enabled() -> bool:
    """Whether settings come from block documents: in deployment runs, unless PIPELINE_SETTINGS_FROM_BLOCKS says."""
    flag = os.environ.get(FROM_BLOCKS, "").strip().lower()
    if flag in ("1", "true", "yes"):
        return True
    if flag in ("0", "false", "no"):
        return False
    if flag:
        raise ValueError(f"{FROM_BLOCKS}={flag!r} is not understood: expected 1 or 0")
    return runtime.deployment.id is not None


def resolve_resources(settings: Settings | None = None) -> Resources:
    """`settings` (default: `current_settings()`), with the blocks from their documents where they exist (in
    deployment runs) and from the settings otherwise; PIPELINE_WAREHOUSE_BLOCK's document in any run without
    PIPELINE_DATABASE_URL. It never starts a warehouse."""
    settings = settings or current_settings()
    if not blocks_enabled():
        # Outside deployments the environment wins, as for every block: with PIPELINE_DATABASE_URL set,
        # `check-freshness` needs no Prefect API even where PIPELINE_WAREHOUSE_BLOCK is set.
        if settings.warehouse_block is None or settings.database_url is not None:
            return Resources.build(settings)
        warehouse = load_warehouse(settings)
        _run_logger().info(describe_origins(origins(warehouse, None, None, settings.warehouse_block)))
        return Resources.build(settings, warehouse)
    documents = (
        load_warehouse(settings),
        _load(SourceApi, SOURCE_API),
        _load(NotificationWebhook, WEBHOOK),
    )
    _run_logger().info(describe_origins(origins(*documents, warehouse_name=settings.warehouse_block or WAREHOUSE)))
    return Resources.build(settings, *documents)


# Each flow run's resources, from the first use in the run (its time limit) to its state hook: a hook
# gets only (flow, flow_run, state), so it finds the run's warehouse engine here instead of making another.
_runs: dict[str, Resources] = {}
_runs_lock = threading.Lock()


def run_resources(flow_run_id: str | None = None) -> Resources:
    """The resources of flow run `flow_run_id` (default: the current one), resolved on its first call.

    Outside a flow run it resolves afresh each call. The entry lives until `release_run_resources`,
    which the run's state hook calls; a flow without one runs in a process of its own (a worker's)
    or once per command, so the few it leaves behind end with the process.
    """
    flow_run_id = flow_run_id or runtime.flow_run.id
    if flow_run_id is None:
        return resolve_resources()
    with _runs_lock:
        if flow_run_id not in _runs:
            _runs[flow_run_id] = resolve_resources()
        return _runs[flow_run_id]


def release_run_resources(flow_run_id: str) -> None:
    """Forget the run's resources and close its warehouse engine."""
    with _runs_lock:
        resources = _runs.pop(flow_run_id, None)
    if resources is not None and resources.configured_warehouse is not None:
        resources.configured_warehouse.dispose()


def load_warehouse(settings: Settings) -> SqlAlchemyConnector | None:
    """The warehouse's SqlAlchemyConnector document: the one PIPELINE_WAREHOUSE_BLOCK names (which must exist), else
    `weather-warehouse` if saved."""
    if settings.warehouse_block is None:
        return _load(SqlAlchemyConnector, WAREHOUSE)
    connector = _load(SqlAlchemyConnector, settings.warehouse_block)
    if connector is None:
        raise WarehouseNotConfigured(
            f"PIPELINE_WAREHOUSE_BLOCK names {settings.warehouse_block!r}, but the Prefect server has no"
            " SqlAlchemyConnector document of that name"
        )
    return connector


def warehouse_configured(settings: Settings, from_blocks: bool = True) -> bool:
    """Whether `resolve_resources()` would find a warehouse, reading at most the warehouse's document.

    `from_blocks=False`: for a command that never reads blocks, only the environment counts.
    """
    if settings.database_url is not None or settings.warehouse_block is not None:
        return True
    return from_blocks and blocks_enabled() and _load(SqlAlchemyConnector, WAREHOUSE) is not None


def origins(
    warehouse: SqlAlchemyConnector | None,
    source: SourceApi | None,
    webhook: NotificationWebhook | None,
    warehouse_name: str = WAREHOUSE,
) -> dict[str, str]:
    """Where each setting comes from: the name of the given document that provides it, else `env`."""
    given = {WAREHOUSE: warehouse, SOURCE_API: source, WEBHOOK: webhook}
    return {
        name: (warehouse_name if document == WAREHOUSE else document) if given[document] is not None else "env"
        for document, names in PROVIDES.items()
        for name in names
    }


def describe_origins(origins: dict[str, str]) -> str:
    """One log line naming where each setting came from; it never contains a value."""
    by_origin: dict[str, list[str]] = {}
    for name, origin in origins.items():
        by_origin.setdefault(origin, []).append(name)
    parts = [
        f"{', '.join(names)} from {'the environment' if origin == 'env' else f'block {origin}'}"
        for origin, names in by_origin.items()
    ]
    return "settings: " + "; ".join(parts)


def apply_blocks(settings: Settings) -> list[str]:
    """Register the block types and write the documents from `settings`; returns what was done, without secrets."""
    for block_type in BLOCK_TYPES:
        block_type.register_type_and_schema()
    done = []
    if settings.warehouse_block not in (None, WAREHOUSE):
        done.append(f"{WAREHOUSE}: not written, runs use the SqlAlchemyConnector {settings.warehouse_block!r}")
    elif settings.database_url is None:
        done.append(f"{WAREHOUSE}: not written, PIPELINE_DATABASE_URL is unset (an existing document is kept)")
    else:
        connector = connector_from_url(settings.database_url)
        connector.save(WAREHOUSE, overwrite=True)
        done.append(f"{WAREHOUSE}: saved as a SqlAlchemyConnector ({Warehouse(connector).describe()})")
    source = SourceApi(
        base_url=settings.source_url,
        timeout_seconds=settings.http_timeout_seconds,
        rate_limit=settings.source_rate_limit,
    )
    source.save(SOURCE_API, overwrite=True)
    done.append(
        f"{SOURCE_API}: saved ({source.base_url}, timeout {source.timeout_seconds:g} s, "
        f"rate limit {source.rate_limit or 'none'})"
    )
    if settings.webhook_url is None:
        done.append(f"{WEBHOOK}: not written, PIPELINE_WEBHOOK_URL is unset (an existing document is kept)")
    else:
        webhook = NotificationWebhook(url=settings.webhook_url, signing_key=settings.webhook_secret)
        webhook.save(WEBHOOK, overwrite=True)
        url = httpx.URL(settings.webhook_url.get_secret_value())
        signed = "signed" if webhook.signing_key else "unsigned"
        done.append(f"{WEBHOOK}: saved ({url.scheme}://{url.host}/…, {signed})")
    return done


def _load(block_type: type, name: str):
    try:
        return block_type.load(name)
    except ValueError:  # Prefect's "Unable to find block document named …": keep the environment's value
        return None


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:
        return logger
