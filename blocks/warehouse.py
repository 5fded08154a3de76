"""The warehouse connection block: a Postgres DSN kept as a secret."""

import psycopg
from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, field_validator

from pipeline import transform, warehouse


class WarehouseConnection(Block):
    """The Postgres database the pipeline loads into and dbt builds in."""

    # Validation errors must not echo the input: it is a secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    _block_type_name = "Warehouse Connection"
    _description = "The weather warehouse: a libpq connection URI, stored as a secret since it carries a password."

    database_url: SecretStr = Field(
        title="Database URL",
        description="libpq URI, e.g. postgresql://weather:password@db.internal:5432/weather",
    )
    # A run's (lock_timeout, statement_timeout) in seconds, set by `with_session_limits`; not saved with the document.
    _session_limits: tuple[float, float] | None = PrivateAttr(default=None)

    @field_validator("database_url")
    @classmethod
    def _parseable(cls, value: SecretStr) -> SecretStr:
        try:
            psycopg.conninfo.conninfo_to_dict(value.get_secret_value())
        except psycopg.ProgrammingError:
            raise ValueError("database_url is not a valid libpq connection string") from None
        return value

    def with_session_limits(self, lock_timeout: float, statement_timeout: float) -> "WarehouseConnection":
        """This warehouse, with every session it opens (psycopg's and dbt's) limited to these waits, in seconds."""
        limited = self.model_copy()
        limited._session_limits = (lock_timeout, statement_timeout)
        return limited

    def dsn(self) -> str:
        """The connection string, password and session limits included: pass it to a driver, never to a log."""
        dsn = self.database_url.get_secret_value()
        if self._session_limits is None:
            return dsn
        return warehouse.with_timeouts(dsn, *self._session_limits)

    def describe(self) -> str:
        """`user@host:port/dbname`, for messages and logs."""
        return warehouse.redact_dsn(self.database_url.get_secret_value())

    def connect(self, **kwargs) -> psycopg.Connection:
        """Open a psycopg connection; a failure names the server but not the password."""
        return warehouse.connect(self.dsn(), **kwargs)

    def dbt_environment(self) -> dict[str, str]:
        """The environment dbt's profile reads to reach this warehouse; the session limits go in PGOPTIONS."""
        return transform.profile_env(self.dsn())
