from pathlib import Path

import pytest
from prefect_sqlalchemy import ConnectionComponents, SqlAlchemyConnector
from pydantic import SecretStr, ValidationError

from blocks import (
    NotificationWebhook,
    Resources,
    SourceApi,
    Warehouse,
    WarehouseNotConfigured,
    blocks_enabled,
    connector_from_url,
    release_run_resources,
    resolve_resources,
    run_resources,
)
from blocks.documents import describe_origins, origins
from pipeline import notify
from pipeline.settings import Settings, current_settings, use_settings
from pipeline.warehouse import WarehouseError

DSN = "postgresql://weather:hunter2@db.internal:5432/weather"
# The example published with the Standard Webhooks spec: a public test vector, not a key of ours.
SPEC_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOOK = "https://hooks.example.com/services/T0K3N"


@pytest.fixture
def no_pipeline_env(monkeypatch):
    for name in (
        "PIPELINE_SETTINGS_FROM_BLOCKS",
        "PIPELINE_DATABASE_URL",
        "PIPELINE_SOURCE_URL",
        "PIPELINE_WAREHOUSE_BLOCK",
    ):
        monkeypatch.delenv(name, raising=False)


def test_connector_from_url_is_the_components_form_with_the_psycopg_driver():
    connector = connector_from_url(DSN)

    info = connector.connection_info
    assert isinstance(info, ConnectionComponents)
    assert (info.driver, info.host, info.port, info.database, info.username) == (
        "postgresql+psycopg",
        "db.internal",
        5432,
        "weather",
        "weather",
    )
    assert info.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(connector)
    assert "hunter2" not in connector.model_dump_json()


def test_connector_from_url_keeps_a_socket_directory_and_other_parameters():
    info = connector_from_url("postgresql://postgres:@/weather?host=/tmp/pg&sslmode=disable").connection_info

    assert (info.host, info.database, info.query) == ("/tmp/pg", "weather", {"sslmode": "disable"})
    assert Warehouse(connector_from_url("postgresql://postgres:@/weather?host=/tmp/pg")).host == "/tmp/pg"


def test_connector_from_url_rejects_an_unparseable_dsn_without_echoing_it():
    with pytest.raises(ValueError) as rejected:
        connector_from_url("host=db password=hunter2 =broken")

    assert "not a valid libpq connection string" in str(rejected.value)
    assert "hunter2" not in str(rejected.value)


def test_warehouse_with_session_limits_passes_them_in_connect_args_options():
    warehouse = Warehouse.from_url(DSN).with_session_limits(30, 600)
    limits = "-c lock_timeout=30000 -c statement_timeout=600000"

    assert warehouse.connect_args()["options"] == limits
    assert warehouse.connect_args()["application_name"] == "weather-pipeline"
    assert warehouse.options() == limits
    assert warehouse.describe() == "weather@db.internal:5432/weather"
    assert "hunter2" not in repr(warehouse)


def test_warehouse_without_session_limits_adds_no_options():
    assert "options" not in Warehouse.from_url(DSN).connect_args()


def test_warehouse_keeps_a_user_connectors_own_options_and_connect_args_before_the_limits():
    connector = SqlAlchemyConnector(
        connection_info=ConnectionComponents(driver="postgresql+psycopg2", host="db", database="dw", username="etl"),
        connect_args={"options": "-c search_path=raw", "sslmode": "require"},
    )

    args = Warehouse(connector).with_session_limits(1, 2).connect_args()

    assert args["options"] == "-c search_path=raw -c lock_timeout=1000 -c statement_timeout=2000"
    assert args["sslmode"] == "require"


def test_warehouse_uses_psycopg_3_whichever_postgres_driver_the_document_names():
    components = ConnectionComponents(driver="postgresql+psycopg2", host="db", database="dw", username="etl")
    url_form = SqlAlchemyConnector(connection_info="postgresql+pg8000://etl:pw@db:5433/dw")

    assert Warehouse(SqlAlchemyConnector(connection_info=components)).url.drivername == "postgresql+psycopg"
    assert Warehouse(url_form).url.drivername == "postgresql+psycopg"
    assert Warehouse(url_form).describe() == "etl@db:5433/dw"


def test_warehouse_refuses_a_connector_to_another_database_engine():
    with pytest.raises(WarehouseError, match="must point at Postgres"):
        Warehouse(SqlAlchemyConnector(connection_info=ConnectionComponents(driver="sqlite+pysqlite", database="x")))


def test_warehouse_dbt_target_has_the_connectors_credentials():
    target = Warehouse.from_url(DSN).dbt_target()

    assert target == {
        "type": "postgres",
        "host": "db.internal",
        "port": 5432,
        "user": "weather",
        "password": "hunter2",
        "dbname": "weather",
        "schema": "analytics",
        "threads": 4,
        "application_name": "weather-pipeline",
    }


def test_source_api_defaults_are_the_settings_defaults():
    block = SourceApi()
    defaults = Settings.model_fields

    assert block.base_url == defaults["source_url"].default
    assert block.timeout_seconds == defaults["http_timeout_seconds"].default
    assert block.rate_limit == defaults["source_rate_limit"].default


def test_source_api_client_is_bound_to_its_base_url_and_timeout():
    with SourceApi(base_url="http://127.0.0.1:8080/", timeout_seconds=3, rate_limit="").client() as client:
        assert str(client.base_url) == "http://127.0.0.1:8080"
        assert client.timeout.read == 3


def test_source_api_rejects_a_base_url_without_http_scheme():
    with pytest.raises(ValidationError, match="must start with http"):
        SourceApi(base_url="archive-api.open-meteo.com")


def test_notification_webhook_keeps_url_and_key_out_of_repr_and_dumps():
    block = NotificationWebhook(url=HOOK, signing_key=SPEC_SECRET)

    for text in (repr(block), str(block.model_dump()), block.model_dump_json()):
        assert "T0K3N" not in text
        assert SPEC_SECRET not in text
    assert block.url.get_secret_value() == HOOK


@pytest.mark.parametrize("key", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_"])
def test_notification_webhook_rejects_a_key_that_is_not_whsec_base64(key):
    with pytest.raises(ValidationError, match="whsec_") as rejected:
        NotificationWebhook(url=HOOK, signing_key=key)

    assert "input_value" not in str(rejected.value)


def test_notification_webhook_accepts_a_key_whose_base64_lost_its_padding():
    padded = "whsec_c2VjcmV0IQ=="  # base64 of "secret!"
    unpadded = padded.rstrip("=")

    block = NotificationWebhook(url=HOOK, signing_key=unpadded)

    assert block.signing_key.get_secret_value() == unpadded
    assert notify.sign(unpadded, "msg_1", 1700000000, b"{}") == notify.sign(padded, "msg_1", 1700000000, b"{}")


def test_notification_webhook_signing_key_is_optional():
    assert NotificationWebhook(url=HOOK).signing_key is None


def test_origins_name_the_document_of_each_setting_it_provides():
    given = origins(
        connector_from_url(DSN),
        SourceApi(base_url="http://127.0.0.1:8080", timeout_seconds=5, rate_limit=""),
        NotificationWebhook(url=HOOK, signing_key=SPEC_SECRET),
        warehouse_name="analytics-warehouse",
    )

    assert given == {
        "database_url": "analytics-warehouse",
        "source_url": "weather-source-api",
        "http_timeout_seconds": "weather-source-api",
        "source_rate_limit": "weather-source-api",
        "webhook_url": "weather-webhook",
        "webhook_secret": "weather-webhook",
    }


def test_origins_keep_the_environment_for_missing_documents():
    assert origins(connector_from_url(DSN), None, None) == {
        "database_url": "weather-warehouse",
        "source_url": "env",
        "http_timeout_seconds": "env",
        "source_rate_limit": "env",
        "webhook_url": "env",
        "webhook_secret": "env",
    }


def test_describe_origins_names_where_settings_came_from_never_their_values():
    line = describe_origins(origins(connector_from_url(DSN), None, NotificationWebhook(url=HOOK)))

    assert line == (
        "settings: database_url from block weather-warehouse; "
        "source_url, http_timeout_seconds, source_rate_limit from the environment; "
        "webhook_url, webhook_secret from block weather-webhook"
    )


@pytest.mark.parametrize(("flag", "enabled"), [("1", True), ("true", True), ("0", False), ("false", False)])
def test_blocks_enabled_follows_an_explicit_flag(monkeypatch, flag, enabled):
    monkeypatch.setenv("PIPELINE_SETTINGS_FROM_BLOCKS", flag)
    monkeypatch.setenv("PREFECT__RUNTIME__DEPLOYMENT__ID", "9f1d0c1e-0000-4000-8000-000000000000")

    assert blocks_enabled() is enabled


def test_blocks_enabled_in_deployment_runs_only(monkeypatch, no_pipeline_env):
    assert blocks_enabled() is False
    monkeypatch.setenv("PREFECT__RUNTIME__DEPLOYMENT__ID", "9f1d0c1e-0000-4000-8000-000000000000")
    assert blocks_enabled() is True


def test_blocks_enabled_rejects_an_unknown_flag(monkeypatch):
    monkeypatch.setenv("PIPELINE_SETTINGS_FROM_BLOCKS", "maybe")

    with pytest.raises(ValueError, match="PIPELINE_SETTINGS_FROM_BLOCKS='maybe'"):
        blocks_enabled()


def test_resolve_resources_outside_a_deployment_reads_only_the_environment(monkeypatch, no_pipeline_env):
    monkeypatch.setenv("PIPELINE_DATABASE_URL", DSN)
    monkeypatch.setenv("PIPELINE_SOURCE_URL", "http://127.0.0.1:9")

    resources = resolve_resources()

    assert resources == Resources.build(Settings())
    assert resources.warehouse == Warehouse.from_url(DSN).with_session_limits(300, 3600)
    assert resources.source.base_url == "http://127.0.0.1:9"
    assert resources.settings.source_url == "http://127.0.0.1:9"


def test_resources_keep_secrets_in_the_blocks_not_in_the_settings():
    settings = Settings(
        database_url=DSN,
        webhook_url=HOOK,
        webhook_secret=SPEC_SECRET,
        lock_timeout_seconds=30,
        statement_timeout_seconds=600,
    )

    resources = Resources.build(settings)

    assert (resources.settings.database_url, resources.settings.webhook_url, resources.settings.webhook_secret) == (
        None,
        None,
        None,
    )
    assert resources.warehouse.url == Warehouse.from_url(DSN).url
    assert resources.warehouse.connect_args()["options"] == "-c lock_timeout=30000 -c statement_timeout=600000"
    assert resources.webhook.url == SecretStr(HOOK)
    assert resources.webhook.signing_key == SecretStr(SPEC_SECRET)


def test_resources_prefer_documents_over_the_environment():
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none", source_url="http://127.0.0.1:1")
    source = SourceApi(base_url="http://127.0.0.1:8080", timeout_seconds=5, rate_limit="")

    resources = Resources.build(settings, connector_from_url(DSN), source, None)

    assert resources.warehouse.describe() == "weather@db.internal:5432/weather"
    assert resources.source == source
    assert (resources.settings.source_url, resources.settings.source_rate_limit) == ("http://127.0.0.1:8080", "")
    assert resources.webhook is None


def test_resources_without_a_warehouse_name_what_to_configure_and_start_none(no_pipeline_env, tmp_path):
    resources = Resources.build(Settings(data_dir=tmp_path))

    assert resources.configured_warehouse is None
    with pytest.raises(WarehouseNotConfigured, match="PIPELINE_DATABASE_URL.*weather-warehouse"):
        _ = resources.warehouse
    assert not (tmp_path / "postgres").exists()


def test_resolve_resources_outside_a_deployment_prefers_the_database_url_to_a_named_block(monkeypatch, no_pipeline_env):
    monkeypatch.setenv("PIPELINE_DATABASE_URL", DSN)
    monkeypatch.setenv("PIPELINE_WAREHOUSE_BLOCK", "analytics-postgres")

    # No Prefect API is asked: the variable says where the warehouse is.
    assert resolve_resources().warehouse.describe() == "weather@db.internal:5432/weather"


def test_warehouse_connect_failure_names_the_server_but_not_the_password():
    warehouse = Warehouse.from_url("postgresql://etl:hunter2@127.0.0.1:1/warehouse")

    with pytest.raises(WarehouseError) as failed:
        warehouse.connect()

    assert str(failed.value).startswith("cannot connect to the warehouse at etl@127.0.0.1:1/warehouse: ")
    assert "hunter2" not in str(failed.value)


def test_run_resources_are_resolved_once_per_flow_run_until_released(monkeypatch, no_pipeline_env):
    monkeypatch.setenv("PIPELINE_DATABASE_URL", DSN)
    first = run_resources("run-1")

    monkeypatch.setenv("PIPELINE_DATABASE_URL", "postgresql://other@db.internal/other")
    assert run_resources("run-1") is first
    assert run_resources("run-2").warehouse.describe() == "other@db.internal:5432/other"

    release_run_resources("run-1")
    release_run_resources("run-2")
    assert run_resources("run-1").warehouse.describe() == "other@db.internal:5432/other"
    release_run_resources("run-1")


def test_resources_read_the_settings_a_command_installed_instead_of_the_environment(monkeypatch, no_pipeline_env):
    monkeypatch.setenv("PIPELINE_DATABASE_URL", DSN)
    installed = Settings(database_url="postgresql://local@db.internal/local", data_dir=Path("/nowhere"))

    with use_settings(installed):
        assert current_settings() is installed
        assert resolve_resources().warehouse.describe() == "local@db.internal:5432/local"
    assert current_settings().database_url.get_secret_value() == DSN
