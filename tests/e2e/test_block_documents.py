"""The block documents `pipeline deploy` writes, read back through a real Prefect server."""

import base64
from datetime import UTC, datetime

import pytest
from prefect.client.orchestration import get_client
from prefect_sqlalchemy import ConnectionComponents, SqlAlchemyConnector

from blocks import (
    SOURCE_API,
    WAREHOUSE,
    NotificationWebhook,
    SourceApi,
    Warehouse,
    resolve_resources,
    warehouse_configured,
)
from pipeline import notify
from pipeline.settings import Settings
from tests.support import WebhookReceiver

SIGNING_KEY = "whsec_" + base64.b64encode(b"e2e-test-signing-key-0123").decode()


@pytest.fixture
def receiver():
    """A local endpoint that verifies what it receives with the block's signing key."""
    with WebhookReceiver(SIGNING_KEY) as receiver:
        yield receiver


def test_warehouse_document_is_a_psycopg_sqlalchemy_connector_that_connects(configured, database_url):
    block = SqlAlchemyConnector.load(WAREHOUSE)

    with Warehouse(block).connect() as conn:
        name = conn.execute("select current_database()").fetchone()[0]

    assert isinstance(block.connection_info, ConnectionComponents)
    assert block.connection_info.driver == "postgresql+psycopg"
    assert block.connection_info.database == name
    assert name in database_url


def test_source_api_document_calls_the_configured_api(configured, source):
    block = SourceApi.load(SOURCE_API)
    params = {"latitude": "52.37", "longitude": "4.9", "start_date": "2024-03-09", "end_date": "2024-03-09"}

    with block.client() as client:
        response = client.get("/v1/archive", params=params | {"hourly": "temperature_2m", "timezone": "UTC"})

    assert block.base_url == source.url
    assert response.status_code == 200
    assert len(response.json()["hourly"]["time"]) == 24


def test_warehouse_document_secret_leaves_the_server_only_on_request(configured):
    # The test database's role has no password: save one that has, as a user's would.
    components = ConnectionComponents(driver="postgresql+psycopg", host="db", username="etl", password="hunter2")
    SqlAlchemyConnector(connection_info=components).save("e2e-warehouse", overwrite=True)
    try:
        with get_client(sync_client=True) as client:
            hidden = client.read_block_document_by_name("e2e-warehouse", "sqlalchemy-connector", include_secrets=False)
            shown = client.read_block_document_by_name("e2e-warehouse", "sqlalchemy-connector", include_secrets=True)
    finally:
        SqlAlchemyConnector.delete("e2e-warehouse")

    assert "hunter2" not in str(hidden.data)
    assert shown.data["connection_info"]["password"] == "hunter2"


def test_webhook_document_round_trip_signs_deliveries_with_its_key(configured, receiver):
    # Not weather-webhook: the runs of the other tests would notify this short-lived endpoint.
    NotificationWebhook(url=receiver.url, signing_key=SIGNING_KEY).save("e2e-webhook", overwrite=True)
    try:
        block = NotificationWebhook.load("e2e-webhook")
        event = notify.build_event(notify.RUN_SUCCEEDED, {"rows_loaded": 72}, datetime.now(UTC))
        delivered = block.deliver(event, "msg_e2e")
    finally:
        NotificationWebhook.delete("e2e-webhook")

    [delivery] = receiver.deliveries
    assert delivered
    assert delivery.verified() == event
    assert delivery.headers["webhook-id"] == "msg_e2e"


def test_resolve_resources_prefers_documents_and_keeps_the_environment_for_missing_ones(
    configured, database_url, source, monkeypatch
):
    monkeypatch.setenv("PIPELINE_SETTINGS_FROM_BLOCKS", "1")
    monkeypatch.setenv("PIPELINE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("PIPELINE_SOURCE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("PIPELINE_WEBHOOK_URL", "https://hooks.example.com/from-env")

    resources = resolve_resources()

    assert resources.warehouse.url.database in database_url
    assert resources.warehouse.url.port != 1
    assert resources.source.base_url == resources.settings.source_url == source.url
    assert resources.source.rate_limit == "open-meteo-api"
    # No weather-webhook document was written (PIPELINE_WEBHOOK_URL was unset at deploy time).
    assert resources.webhook.url.get_secret_value() == "https://hooks.example.com/from-env"


def test_a_warehouse_document_counts_as_configured_only_where_blocks_are_read(configured, monkeypatch):
    """`pipeline run` starts the local Postgres only when neither the environment nor the document names one."""
    monkeypatch.delenv("PIPELINE_DATABASE_URL", raising=False)
    monkeypatch.setenv("PIPELINE_SETTINGS_FROM_BLOCKS", "1")
    assert warehouse_configured(Settings())
    assert not warehouse_configured(Settings(), from_blocks=False)

    monkeypatch.setenv("PIPELINE_SETTINGS_FROM_BLOCKS", "0")
    assert not warehouse_configured(Settings())
    monkeypatch.setenv("PIPELINE_DATABASE_URL", "postgresql://etl@db.internal/warehouse")
    assert warehouse_configured(Settings(), from_blocks=False)
