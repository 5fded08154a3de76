"""The warehouse: a prefect-sqlalchemy `SqlAlchemyConnector` document, and what a run does with it."""

import threading

import psycopg
from prefect_sqlalchemy import ConnectionComponents, SqlAlchemyConnector
from pydantic import SecretStr
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from pipeline.errors import first_line
from pipeline.warehouse import WarehouseError, session_options

# psycopg 3: loads COPY binary buffers straight into the keyed tables.
DRIVER = "postgresql+psycopg"
APPLICATION_NAME = "weather-pipeline"
CONNECT_TIMEOUT_SECONDS = 10


def connector_from_url(url: str | SecretStr) -> SqlAlchemyConnector:
    """The `SqlAlchemyConnector` (components form, psycopg 3) for a libpq URI such as PIPELINE_DATABASE_URL.

    Parameters other than host, port, database, user and password (sslmode, options, …) go in its `query`.
    """
    text = url.get_secret_value() if isinstance(url, SecretStr) else url
    try:
        info = {name: str(value) for name, value in psycopg.conninfo.conninfo_to_dict(text).items()}
    except psycopg.ProgrammingError:
        raise ValueError("the warehouse URL is not a valid libpq connection string") from None
    port = info.pop("port", None)
    components = ConnectionComponents(
        driver=DRIVER,
        host=info.pop("host", None),
        port=int(port) if port else None,
        database=info.pop("dbname", None),
        username=info.pop("user", None),
        password=info.pop("password", None),
        query=info or None,
    )
    return SqlAlchemyConnector(connection_info=components)


def psycopg_connection_info(connector: SqlAlchemyConnector) -> ConnectionComponents | str:
    """The connector's connection info with the psycopg 3 driver, whichever Postgres driver its document names."""
    info = connector.connection_info
    url = info.create_url() if isinstance(info, ConnectionComponents) else make_url(str(info))
    if url.get_backend_name() != "postgresql":
        raise WarehouseError(f"the warehouse block must point at Postgres, not {url.get_backend_name()!r}")
    if isinstance(info, ConnectionComponents):
        return info.model_copy(update={"driver": DRIVER})
    return url.set(drivername=DRIVER).render_as_string(hide_password=False)


class Warehouse:
    """The warehouse a run works in: a `SqlAlchemyConnector` plus the run's session limits, one engine per run.

    A plain object rather than a block subclass, so any user's SqlAlchemyConnector document works as it is.
    """

    def __init__(
        self,
        connector: SqlAlchemyConnector,
        lock_timeout: float | None = None,
        statement_timeout: float | None = None,
    ):
        self.connector = connector
        self._connection_info = psycopg_connection_info(connector)
        info = self._connection_info
        self.url: URL = info.create_url() if isinstance(info, ConnectionComponents) else make_url(info)
        self.lock_timeout = lock_timeout
        self.statement_timeout = statement_timeout
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str | SecretStr) -> "Warehouse":
        """The warehouse at a libpq URI (PIPELINE_DATABASE_URL), through the same connector a block would hold."""
        return cls(connector_from_url(url))

    def with_session_limits(self, lock_timeout: float, statement_timeout: float) -> "Warehouse":
        """This warehouse, with every session it opens (psycopg's and dbt's) limited to these waits, in seconds."""
        return Warehouse(self.connector, lock_timeout, statement_timeout)

    @property
    def database(self) -> str:
        return self.url.database or self.url.username or "postgres"

    @property
    def host(self) -> str:
        # A Unix-socket directory (the embedded Postgres) may arrive as the `host` query parameter.
        return self.url.host or str(self.url.query.get("host") or "localhost")

    def describe(self) -> str:
        """`user@host:port/dbname`, for messages and logs."""
        return f"{self.url.username or ''}@{self.host}:{self.url.port or 5432}/{self.database}"

    def options(self) -> str:
        """The libpq `options` every session gets: the connector's own, then the run's lock and statement timeouts."""
        own = (self.connector.connect_args or {}).get("options") or self.url.query.get("options") or ""
        limits = (
            session_options(self.lock_timeout, self.statement_timeout)
            if self.lock_timeout is not None and self.statement_timeout is not None
            else ""
        )
        return " ".join(part for part in (str(own), limits) if part)

    def connect_args(self) -> dict:
        """What the engine passes to psycopg.connect: the connector's `connect_args`, the timeouts in `options`."""
        args = {
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": APPLICATION_NAME,
            **(self.connector.connect_args or {}),
        }
        if options := self.options():
            args["options"] = options
        return args

    def engine(self) -> Engine:
        """The run's engine, created on first use; connections are not pooled, each `connect()` is the caller's."""
        with self._engine_lock:
            if self._engine is None:
                limited = SqlAlchemyConnector(connection_info=self._connection_info, connect_args=self.connect_args())
                self._engine = limited.get_engine(poolclass=NullPool)
            return self._engine

    def dispose(self) -> None:
        """Close the engine; the next `connect()` makes a new one."""
        with self._engine_lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def connect(self, autocommit: bool = False) -> psycopg.Connection:
        """A psycopg 3 connection from the connector's engine, closed by `with`; a failure names the server only."""
        try:
            # The pool hands on the driver's own error: SQLAlchemy wraps it only on `engine.connect()`.
            proxied = self.engine().raw_connection()
        except (psycopg.Error, DBAPIError) as exc:
            cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
            raise WarehouseError(f"cannot connect to the warehouse at {self.describe()}: {first_line(cause)}") from None
        conn = proxied.driver_connection
        # Out of SQLAlchemy's hands: closing the psycopg connection is all its owner has to do.
        proxied.detach()
        conn.autocommit = autocommit
        return conn

    def dbt_target(self, schema: str = "analytics", threads: int = 4) -> dict:
        """The dbt-postgres target for this warehouse, password included: write it only to a private file.

        dbt-postgres has no field for libpq `options`: `options()` reaches dbt's sessions as PGOPTIONS.
        """
        target = {
            "type": "postgres",
            "host": self.host,
            "port": self.url.port or 5432,
            "user": self.url.username or "postgres",
            "password": self.url.password or "",
            "dbname": self.database,
            "schema": schema,
            "threads": threads,
            "application_name": APPLICATION_NAME,
        }
        if sslmode := self.url.query.get("sslmode"):
            target["sslmode"] = str(sslmode)
        return target

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Warehouse):
            return NotImplemented
        # Blocks compare their private state too (an ExitStack each): compare what they connect to.
        mine = (self.url, self.connector.connect_args, self.lock_timeout, self.statement_timeout)
        return mine == (other.url, other.connector.connect_args, other.lock_timeout, other.statement_timeout)

    __hash__ = None  # type: ignore[assignment]  # mutable: it holds the run's engine

    def __repr__(self) -> str:
        return f"Warehouse({self.describe()})"
