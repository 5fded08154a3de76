"""The dashboard's settings, from `PIPELINE_DASHBOARD_*` variables, read at run time."""

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    """Where the BI server is and how the pipeline logs in to it; no URL, no refresh step."""

    model_config = SettingsConfigDict(env_prefix="PIPELINE_DASHBOARD_", extra="ignore")

    # Superset's base URL, e.g. http://127.0.0.1:8088; `pipeline up` sets it for its worker.
    url: str | None = None
    user: str = "admin"
    password: SecretStr | None = None
    # The read-only warehouse role's password, which Superset's connection uses.
    reader_password: SecretStr | None = None
    # The refresh is bounded so a slow or absent BI server costs a run seconds, not minutes.
    timeout_seconds: float = 5.0
    refresh_retries: int = 1
    refresh_retry_delay_seconds: float = 2.0
