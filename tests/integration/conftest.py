"""Integration fixtures: one Prefect test server, one local source server, a clean warehouse per test."""

import psycopg
import pytest
from prefect.testing.utilities import prefect_test_harness

from pipeline.source_server import FaultPlan, SourceServer

TEST_LOCATIONS = '''location_id,name,latitude,longitude
ams,Amsterdam,52.3676,4.9041
cpt,Cape Town,-33.9249,18.4241
o'hare;--,"Chicago, ""O'Hare""",41.9742,-87.9073
rey,Reykjavík,64.1466,-21.9426
syd,Sydney,-33.8688,151.2093
'''


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    """One temporary Prefect server for the session: starting one costs ~20 s."""
    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def source():
    with SourceServer() as server:
        yield server


@pytest.fixture(scope="session")
def locations_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("locations") / "locations.csv"
    path.write_text(TEST_LOCATIONS, encoding="utf-8")
    return path


@pytest.fixture
def pipeline_env(monkeypatch, database_url, source, locations_file, tmp_path):
    """Point the pipeline at the test database and the local source server, with fast retries."""
    source.faults = FaultPlan()
    source.reset_counters()
    for name, value in {
        "PIPELINE_DATABASE_URL": database_url,
        "PIPELINE_SOURCE_URL": source.url,
        "PIPELINE_SOURCE_RATE_LIMIT": "",
        "PIPELINE_LOCATIONS_FILE": str(locations_file),
        "PIPELINE_FETCH_RETRIES": "10",
        "PIPELINE_FETCH_RETRY_BASE_SECONDS": "0.01",
        "PIPELINE_HTTP_TIMEOUT_SECONDS": "2",
        "PIPELINE_LOCATIONS_PER_REQUEST": "2",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PIPELINE_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("PIPELINE_WEBHOOK_SECRET", raising=False)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("drop schema if exists raw, ops, staging, audit, marts cascade")
    yield database_url


@pytest.fixture
def db(pipeline_env):
    with psycopg.connect(pipeline_env, autocommit=True) as conn:
        yield conn
