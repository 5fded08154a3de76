"""The warehouse connection block: a Postgres DSN kept as a secret."""

import psycopg
from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator

from pipeline import warehouse


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

    @field_validator("database_url")
    @classmethod
    def _parseable(cls, value: SecretStr) -> SecretStr:
        try:
            psycopg.conninfo.conninfo_to_dict(value.get_secret_value())
        except psycopg.ProgrammingError:
            raise ValueError("database_url is not a valid libpq connection string") from None
        return value

    def dsn(self) -> str:
        """The connection string, password included: pass it to a driver, never to a log."""
        return self.database_url.get_secret_value()

    def connect(self, **kwargs) -> psycopg.Connection:
        """Open a psycopg connection; a failure names the server but not the password."""
        return warehouse.connect(self.dsn(), **kwargs)
