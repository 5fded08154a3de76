"""What every command runs under: the pipeline's Prefect settings, its own settings read once, a warehouse."""

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

# Prefect, the flows, numpy, psycopg and pydantic-settings are imported by the commands that use
# them: `--help` and a mistyped argument answer in a fraction of a second instead of after
# Prefect's ~3 s import, and a bad argument is refused before anything is touched.
if TYPE_CHECKING:
    from blocks import Resources
    from pipeline.settings import Settings

# A fresh PREFECT_HOME takes ~24 s to migrate its first temporary server, past Prefect's 20 s default.
EPHEMERAL_STARTUP_SECONDS = 180


def execute(command: Callable[[], int]) -> int:
    """Run one command under the pipeline's Prefect settings; bad input ends in one line and exit 2."""
    from pipeline.defaults import HEARTBEAT_SECONDS, OFFLINE_ENV

    # Not configuration but a switch the libraries read from the environment only (Prefect's client and
    # dbt honour DO_NOT_TRACK), here and in every process this one starts; a value the user set is kept.
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    from pipeline import warehouse

    with temporary_settings(
        updates={
            PREFECT_SERVER_ANALYTICS_ENABLED: False,
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: EPHEMERAL_STARTUP_SECONDS,
            # The flow runs this command starts heartbeat as deployment runs do (defaults.HEARTBEAT_SECONDS).
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY: os.environ.get(PREFECT_FLOWS_HEARTBEAT_FREQUENCY.name)
            or HEARTBEAT_SECONDS,
        }
    ):
        try:
            return command()
        except (ValueError, warehouse.WarehouseError) as exc:
            print(f"pipeline: {exc}", file=sys.stderr)
            return 2


def with_warehouse(command: "Callable[[Settings], int]", flows: bool = False) -> int:
    """Run `command` with the settings read once from the environment; with no warehouse configured, the
    embedded local Postgres started and made their warehouse.

    The flows the command runs in this process read the same settings (`use_settings`); a flow run by a
    deployment's worker never starts a warehouse of its own.

    Args:
        flows: the command runs flows, which may read the warehouse from its block document.
    """
    from pydantic import SecretStr

    from blocks import warehouse_configured
    from pipeline import embedded
    from pipeline.settings import Settings, use_settings

    settings = Settings()
    if not warehouse_configured(settings, from_blocks=flows):
        settings = settings.model_copy(update={"database_url": SecretStr(embedded.start(settings.data_dir))})
    with use_settings(settings):
        return command(settings)


def command_resources(settings: "Settings") -> "Resources":
    """The resources of a command that is not a flow run: from `settings`, reading no block but the
    warehouse document PIPELINE_WAREHOUSE_BLOCK names when PIPELINE_DATABASE_URL is unset."""
    from blocks import Resources, load_warehouse

    if settings.warehouse_block is not None and settings.database_url is None:
        return Resources.build(settings, load_warehouse(settings))
    return Resources.build(settings)
