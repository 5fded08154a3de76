"""Postgres access: connections, schema migrations and the SQL files that go with them."""

import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable

import psycopg
from psycopg import sql

from pipeline.errors import first_line
from pipeline.extract import VARIABLES

MIGRATIONS_LOCK = "ops.schema_migrations"
_MIGRATION_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")
# Two files were shipped with the number 005, and databases have recorded both under these
# names: renaming either would apply it again there. Every other number is used once.
_SHARED_NUMBERS = {"005": frozenset({"005_api_calls.sql", "005_outbox.sql"})}


class WarehouseError(Exception):
    """The warehouse cannot be reached or used."""


class LockWaitExpired(Exception):
    """A lock was not granted within its time limit; the message names the lock and its holder."""


@cache
def query(name: str) -> sql.SQL:
    """The statement in `pipeline/sql/<name>.sql`."""
    text = resources.files("pipeline").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")
    return sql.SQL(text)  # type: ignore[arg-type]  # trusted: shipped with the package


def hourly_query(name: str, **parts: sql.Composable) -> sql.Composed:
    """The statement in `pipeline/sql/<name>.sql`, its `{variables}` the API's variables as columns.

    `VARIABLES` is the one list of raw.hourly_weather's variable columns: the COPY, the
    completeness count and the checksums name them from it, in its order.
    """
    columns = sql.SQL(", ").join(sql.Identifier(variable) for variable in VARIABLES)
    return query(name).format(variables=columns, **parts)


def connect(dsn: str, **kwargs) -> psycopg.Connection:
    """Open a connection, turning a failure into one line that names the server, not the password."""
    try:
        return psycopg.connect(dsn, connect_timeout=10, application_name="weather-pipeline", **kwargs)
    except psycopg.OperationalError as exc:
        raise WarehouseError(f"cannot connect to the warehouse at {redact_dsn(dsn)}: {first_line(exc)}") from None


def session_options(lock_timeout: float, statement_timeout: float) -> str:
    """libpq `options` that set `lock_timeout` and `statement_timeout` (given in seconds) for a session."""
    return f"-c lock_timeout={_milliseconds(lock_timeout)} -c statement_timeout={_milliseconds(statement_timeout)}"


def _milliseconds(seconds: float) -> int:
    # 0 would mean "no limit" to Postgres: a limit of 0 s is the shortest one instead.
    return max(1, round(seconds * 1000))


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparseable DSN)"
    host = info.get("host") or "localhost"
    return f"{info.get('user') or ''}@{host}:{info.get('port') or 5432}/{info.get('dbname') or ''}"


def migrate(conn: psycopg.Connection, folder: Traversable | None = None) -> list[str]:
    """Apply the versioned files in `sql/migrations/` that this database has not seen; returns them.

    Each applied file's SHA-256 is kept beside its version: a migration edited after it was
    applied would otherwise be silently skipped, leaving this database unlike a new one. An
    edit is refused (WarehouseError) before anything is applied; change the schema with a
    new file instead. Databases migrated before checksums were kept record them on first sight.
    A file not named `NNN_what_it_does.sql` with a number of its own is refused first.
    """
    folder = folder or resources.files("pipeline").joinpath("sql", "migrations")
    files = migration_files(folder)
    applied = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [MIGRATIONS_LOCK])
        conn.execute("create schema if not exists ops")
        conn.execute(
            "create table if not exists ops.schema_migrations"
            " (version text primary key, applied_at timestamptz not null default now())"
        )
        conn.execute("alter table ops.schema_migrations add column if not exists checksum text")
        done = dict(conn.execute("select version, checksum from ops.schema_migrations").fetchall())
        for entry in files:
            version = entry.name.removesuffix(".sql")
            text = entry.read_text(encoding="utf-8")
            checksum = hashlib.sha256(text.encode()).hexdigest()
            if version not in done:
                conn.execute(text)  # type: ignore[arg-type]  # shipped with the package
                conn.execute(
                    "insert into ops.schema_migrations (version, checksum) values (%s, %s)", [version, checksum]
                )
                applied.append(version)
            elif done[version] is None:
                conn.execute("update ops.schema_migrations set checksum = %s where version = %s", [checksum, version])
            elif done[version] != checksum:
                raise WarehouseError(
                    f"migration {entry.name} was edited after this database applied it (checksum {done[version][:12]}"
                    f" there, {checksum[:12]} in the file); put schema changes in a new migration file"
                )
    return applied


def migration_files(folder: Traversable) -> list[Traversable]:
    """The `.sql` files of `folder` in the order they apply; WarehouseError unless each is `NNN_name.sql`
    with a number of its own (two files with one number would apply in the order of their names).
    """
    files = sorted((entry for entry in folder.iterdir() if entry.name.endswith(".sql")), key=lambda e: e.name)
    by_number: dict[str, set[str]] = {}
    for entry in files:
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match is None:
            raise WarehouseError(f"migration {entry.name} is not named NNN_what_it_does.sql (three digits, lowercase)")
        by_number.setdefault(match.group(1), set()).add(entry.name)
    for number, names in by_number.items():
        if len(names) > 1 and names != _SHARED_NUMBERS.get(number):
            raise WarehouseError(
                f"migrations {', '.join(sorted(names))} share the number {number}; give each change the next"
                f" free number ({int(max(by_number)) + 1:03d})"
            )
    return files


def table_exists(conn: psycopg.Connection, name: str) -> bool:
    """Whether the schema-qualified table `name` exists yet (it does not before the first migration)."""
    return conn.execute("select to_regclass(%s) is not null", [name]).fetchone()[0]


@contextmanager
def session_lock(
    conn: psycopg.Connection,
    name: str,
    on_wait: Callable[[], None] = lambda: None,
    timeout: float | None = None,
) -> Iterator[None]:
    """Hold the advisory lock `name` for the block, across transactions; `on_wait` runs if another holder
    makes us wait, at most `timeout` seconds (then LockWaitExpired). Postgres releases the lock when the
    connection ends, so a killed process cannot leave it held. `conn` must be in autocommit mode.
    """
    key = [name]
    if not conn.execute("select pg_try_advisory_lock(hashtext(%s))", key).fetchone()[0]:
        on_wait()
        try:
            if timeout is not None:
                conn.execute("select set_config('lock_timeout', %s, false)", [f"{_milliseconds(timeout)}ms"])
            conn.execute("select pg_advisory_lock(hashtext(%s))", key)
        except psycopg.errors.LockNotAvailable:
            raise LockWaitExpired(f"waited {timeout:g} s for the lock {name!r}, {_holder(conn, name)}") from None
        finally:
            if timeout is not None and not conn.closed:
                conn.execute("reset lock_timeout")
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute("select pg_advisory_unlock(hashtext(%s))", key)


def _holder(conn: psycopg.Connection, name: str) -> str:
    row = conn.execute(query("advisory_lock_holder"), {"name": name}).fetchone()
    if row is None:
        return "held by another session"
    pid, application, state = row
    return f"held by Postgres pid {pid} ({application or 'no application name'}, {state})"


def day_checksums(conn: psycopg.Connection, table: str) -> dict:
    """`{day: (row_count, distinct_keys, checksum)}` for `raw` (raw.hourly_weather) or `mart` (the daily fact)."""
    statement = hourly_query("raw_day_checksums") if table == "raw" else query(f"{table}_day_checksums")
    rows = conn.execute(statement).fetchall()
    return {day: (row_count, distinct_keys, checksum) for day, row_count, distinct_keys, checksum in rows}


def fresh_database(admin_dsn: str, name: str) -> str:
    """A new, empty database `name` on the server at `admin_dsn`, dropping one left by an earlier run; its DSN."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
