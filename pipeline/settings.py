"""Run-time settings, read from `PIPELINE_*` environment variables."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline import defaults

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCATIONS_FILE = Path(__file__).resolve().parent / "data" / "locations.csv"


class Settings(BaseSettings):
    """Everything a run needs that is not a flow parameter.

    Read once where a command or a run starts (`current_settings()`), never at import time, so a
    deployment and a test can each point it somewhere else; steps receive it, they do not read it.
    """

    model_config = SettingsConfigDict(env_prefix="PIPELINE_", extra="ignore")

    # None: no warehouse configured; the CLI then starts the embedded local Postgres (pipeline.embedded).
    database_url: SecretStr | None = None
    # A SqlAlchemyConnector document to use as the warehouse, in every run: the user's own, for instance.
    warehouse_block: str | None = None
    source_url: str = defaults.SOURCE_URL
    locations_file: Path = DEFAULT_LOCATIONS_FILE
    webhook_url: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    # "slack" sends {"text", "blocks"} for a Slack incoming webhook instead of the JSON contract.
    webhook_format: Literal["standard", "slack"] = "standard"
    # The daily run for D must have completed by this time (UTC) on D+1, or it is late.
    deadline: time = time(7, 0)
    # An undelivered notification is tried again by later commands after this delay,
    # doubling per failed attempt up to an hour.
    outbox_retry_seconds: float = 60.0
    # Then it is dead-lettered after this many failed attempts or this age, whichever comes first:
    # no longer retried, listed by `pipeline alerts`, reported to the heartbeat's /fail.
    outbox_dead_after_attempts: int = 24
    outbox_dead_after_hours: float = 72.0
    # Dead man's switch (Healthchecks.io, Cronitor): the daily run pings it, `<url>/fail` on failure.
    heartbeat_url: SecretStr | None = None
    # How long the freshness check asks the Prefect API for the run's state before saying "unknown".
    prefect_api_timeout_seconds: float = 5.0

    # Every wait has a bound; an expiry fails the run naming what it waited for.
    daily_timeout_seconds: float = 2 * 3600
    backfill_timeout_seconds: float = 24 * 3600
    # A load waiting for another load of the same days, or any lock on the raw tables.
    lock_timeout_seconds: float = 300.0
    # Any one statement of a load or of dbt.
    statement_timeout_seconds: float = 3600.0
    # Waiting for another run's dbt to finish (a backfill's can take a while).
    transform_lock_timeout_seconds: float = 3600.0
    # Waiting for slots of the API rate limit.
    rate_limit_timeout_seconds: float = 900.0

    # The public archive API's limits, as it counts calls (per location, per 14 days, per 10
    # variables). They apply when source_rate_limit is set, i.e. against the public API: the
    # minute through that rate limit, the hour and the day counted in ops.api_calls.
    api_calls_per_minute: int = 600
    api_calls_per_hour: int = 5_000
    api_calls_per_day: int = 10_000
    # Share of each day's calls that a backfill leaves for the daily runs.
    backfill_daily_reserve: float = 0.1

    lookback_days: int = 5
    # Days the archive may still fill in: a daily run re-fetches any incomplete day this
    # recent; one still incomplete after that is listed by ledger.incomplete_days (and alerted).
    revision_horizon_days: int = 10
    # Name of a Prefect global concurrency limit with slot decay (created by the deploy
    # step); empty disables rate limiting, e.g. for the local source server.
    source_rate_limit: str = defaults.SOURCE_RATE_LIMIT
    locations_per_request: int = 100
    # Requests of one window in flight at once, where it is the only window in flight (a daily run, a
    # spread backfill's chunk run); a backfill's chunks in its own threads make one request at a time each.
    fetch_concurrency: int = 4
    http_timeout_seconds: float = defaults.HTTP_TIMEOUT_SECONDS
    fetch_retries: int = 5
    # First retry delay; later ones double (Prefect's exponential_backoff), plus jitter.
    fetch_retry_base_seconds: float = 2.0
    # A backfill loads chunks of consecutive days, several at a time. The public API counts a
    # call per location per started 14 days, so a multiple of 14 costs no more than 14-day
    # chunks; 28 halves the chunks' task runs and transactions (a year × 1,000 locations
    # ingests ~10 % faster than with 14), and a crash loses at most the chunks in flight.
    backfill_chunk_days: int = 28
    backfill_workers: int = 3
    # A spread backfill (--spread) gives each flow run up to this many consecutive chunks, loaded one
    # after another: a run's start-up (the worker's poll, a process, imports: seconds) is paid once for
    # them, and a lost host costs at most one run's chunks again. 9 (2 years in 28-day chunks over
    # 3 slots: 3 runs of 9) measured 1.07x the in-process backfill, 4 (9 runs of 3) 1.18x.
    spread_chunks_per_run: int = 9
    # Larger ranges need an explicit --yes: a typo in a year should not start a decade.
    backfill_max_days: int = 400
    # Embedded Postgres data directory, used only when database_url is unset.
    data_dir: Path = PROJECT_ROOT / ".local"
    dbt_project_dir: Path = PROJECT_ROOT / "dbt_project"
    # Run the build through prefect-dbt's PrefectDbtRunner, one Prefect task per dbt node (~3× the dbt step).
    dbt_nodes_as_tasks: bool = False
    # Send Prefect asset events for the raw table, each dbt model and seed, and the published marts.
    asset_events: bool = True


# The settings a command in this process resolved (e.g. the CLI with its embedded warehouse), for the
# flows it calls in-process: a flow function takes parameters only, so they cannot be passed as an argument.
_installed: ContextVar[Settings | None] = ContextVar("pipeline_settings", default=None)


def current_settings() -> Settings:
    """The settings the running command installed (`use_settings`), else read from the environment now."""
    return _installed.get() or Settings()


@contextmanager
def use_settings(settings: Settings) -> Iterator[Settings]:
    """Make `settings` what flows run in this context read, instead of the environment."""
    token = _installed.set(settings)
    try:
        yield settings
    finally:
        _installed.reset(token)
