import pytest
from pydantic import SecretStr, ValidationError

from blocks import (
    NotificationWebhook,
    Resources,
    SourceApi,
    WarehouseConnection,
    WarehouseNotConfigured,
    blocks_enabled,
    resolve_resources,
)
from blocks.documents import describe_origins, overrides
from pipeline import notify
from pipeline.settings import Settings

DSN = "postgresql://weather:hunter2@db.internal:5432/weather"
# The example published with the Standard Webhooks spec: a public test vector, not a key of ours.
SPEC_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOOK = "https://hooks.example.com/services/T0K3N"


@pytest.fixture
def no_pipeline_env(monkeypatch):
    for name in ("PIPELINE_SETTINGS_FROM_BLOCKS", "PIPELINE_DATABASE_URL", "PIPELINE_SOURCE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_warehouse_connection_keeps_the_dsn_out_of_repr_and_dumps():
    block = WarehouseConnection(database_url=DSN)

    assert "hunter2" not in repr(block)
    assert "hunter2" not in str(block.model_dump())
    assert "hunter2" not in block.model_dump_json()
    assert block.dsn() == DSN


def test_warehouse_connection_rejects_an_unparseable_dsn_without_echoing_it():
    with pytest.raises(ValidationError) as rejected:
        WarehouseConnection(database_url="host=db password=hunter2 =broken")

    assert "not a valid libpq connection string" in str(rejected.value)
    assert "hunter2" not in str(rejected.value)


def test_warehouse_connection_with_session_limits_connects_and_runs_dbt_with_them():
    block = WarehouseConnection(database_url=DSN).with_session_limits(30, 600)
    limits = "-c lock_timeout=30000 -c statement_timeout=600000"

    assert limits in block.dsn()
    assert block.dbt_environment()["PGOPTIONS"] == limits
    assert block.dbt_environment()["DBT_ENV_SECRET_PASSWORD"] == "hunter2"
    assert block.describe() == "weather@db.internal:5432/weather"
    assert "hunter2" not in repr(block)


def test_warehouse_connection_session_limits_are_not_saved_with_the_document():
    block = WarehouseConnection(database_url=DSN).with_session_limits(30, 600)

    assert set(block.model_dump()) >= {"database_url"}
    assert "lock_timeout" not in block.model_dump_json()
    assert WarehouseConnection(database_url=DSN).dsn() == DSN
    assert "PGOPTIONS" not in WarehouseConnection(database_url=DSN).dbt_environment()


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


def test_overrides_take_each_setting_from_its_document():
    updates, origins = overrides(
        WarehouseConnection(database_url=DSN),
        SourceApi(base_url="http://127.0.0.1:8080", timeout_seconds=5, rate_limit=""),
        NotificationWebhook(url=HOOK, signing_key=SPEC_SECRET),
    )

    assert updates["database_url"].get_secret_value() == DSN
    assert (updates["source_url"], updates["http_timeout_seconds"], updates["source_rate_limit"]) == (
        "http://127.0.0.1:8080",
        5,
        "",
    )
    assert updates["webhook_url"].get_secret_value() == HOOK
    assert updates["webhook_secret"].get_secret_value() == SPEC_SECRET
    assert set(origins.values()) == {"weather-warehouse", "weather-source-api", "weather-webhook"}


def test_overrides_keep_the_environment_for_missing_documents():
    updates, origins = overrides(WarehouseConnection(database_url=DSN), None, None)

    assert set(updates) == {"database_url"}
    assert origins == {
        "database_url": "weather-warehouse",
        "source_url": "env",
        "http_timeout_seconds": "env",
        "source_rate_limit": "env",
        "webhook_url": "env",
        "webhook_secret": "env",
    }


def test_overrides_of_a_webhook_without_key_leave_notifications_unsigned():
    updates, _ = overrides(None, None, NotificationWebhook(url=HOOK))

    assert updates["webhook_secret"] is None


def test_describe_origins_names_where_settings_came_from_never_their_values():
    _, origins = overrides(WarehouseConnection(database_url=DSN), None, NotificationWebhook(url=HOOK))

    line = describe_origins(origins)

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
    assert resources.warehouse.database_url == SecretStr(DSN)
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
    assert resources.warehouse.database_url == SecretStr(DSN)
    assert "-c lock_timeout=30000 -c statement_timeout=600000" in resources.warehouse.dsn()
    assert resources.webhook.url == SecretStr(HOOK)
    assert resources.webhook.signing_key == SecretStr(SPEC_SECRET)


def test_resources_prefer_documents_over_the_environment():
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none", source_url="http://127.0.0.1:1")
    source = SourceApi(base_url="http://127.0.0.1:8080", timeout_seconds=5, rate_limit="")

    resources = Resources.build(settings, WarehouseConnection(database_url=DSN), source, None)

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
