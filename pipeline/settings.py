"""Run-time settings, read from `PIPELINE_*` environment variables."""

from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCATIONS_FILE = Path(__file__).resolve().parent / "data" / "locations.csv"


class Settings(BaseSettings):
    """Everything a run needs that is not a flow parameter.

    Construct it when a run starts (`Settings()`), never at import time, so a deployment
    and a test can each point it somewhere else.
    """

    model_config = SettingsConfigDict(env_prefix="PIPELINE_", extra="ignore")

    # None means "the embedded local Postgres" (see pipeline.embedded).
    database_url: SecretStr | None = None
    source_url: str = "https://archive-api.open-meteo.com"
    locations_file: Path = DEFAULT_LOCATIONS_FILE
    webhook_url: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    # "slack" sends {"text", "blocks"} for a Slack incoming webhook instead of the JSON contract.
    webhook_format: Literal["standard", "slack"] = "standard"
    # The daily run for D must have completed by this time (UTC) on D+1, or it is late.
    deadline: time = time(7, 0)

    lookback_days: int = 5
    # Days the archive may still fill in: a daily run re-fetches any incomplete day this
    # recent; one still incomplete after that is listed by load.incomplete_days (and alerted).
    revision_horizon_days: int = 10
    # Name of a Prefect global concurrency limit with slot decay (created by the deploy
    # step); empty disables rate limiting, e.g. for the local source server.
    source_rate_limit: str = "open-meteo-api"
    locations_per_request: int = 100
    http_timeout_seconds: float = 30.0
    fetch_retries: int = 5
    # First retry delay; later ones double (Prefect's exponential_backoff), plus jitter.
    fetch_retry_base_seconds: float = 2.0
    # A backfill loads chunks of consecutive days (the public API counts a call per 14
    # days per location, so 14 costs no more than 1), several at a time.
    backfill_chunk_days: int = 14
    backfill_workers: int = 3
    # Larger ranges need an explicit --yes: a typo in a year should not start a decade.
    backfill_max_days: int = 400
    # Embedded Postgres data directory, used only when database_url is unset.
    data_dir: Path = PROJECT_ROOT / ".local"
    dbt_project_dir: Path = PROJECT_ROOT / "dbt_project"
    ui_url: str | None = None
