from pipeline import stack
from pipeline.stack import describe_database_url, prefect_database_url


def test_prefect_database_url_names_the_prefect_database_on_the_warehouse_server():
    url = prefect_database_url("postgresql://weather:s3cr%40t@db.internal:5433/weather")

    assert url == "postgresql+asyncpg://weather:s3cr%40t@db.internal:5433/prefect"


def test_prefect_database_url_passes_a_unix_socket_as_the_host_parameter():
    url = prefect_database_url("postgresql://postgres:@/weather?host=/srv/pg")

    assert url == "postgresql+asyncpg://postgres@/prefect?host=%2Fsrv%2Fpg"


def test_prefect_database_url_reads_key_value_dsns():
    assert prefect_database_url("host=127.0.0.1 user=w dbname=weather") == "postgresql+asyncpg://w@127.0.0.1/prefect"


def test_describe_database_url_hides_the_password():
    described = describe_database_url("postgresql+asyncpg://prefect:hunter2@127.0.0.1:5432/prefect")

    assert described == "postgresql+asyncpg://prefect:***@127.0.0.1:5432/prefect"


def test_server_database_env_keeps_concurrency_leases_where_a_restarted_server_finds_them():
    env = stack.server_database_env("", {stack.SERVER_DATABASE_URL: "postgresql+asyncpg://db/prefect"})

    assert env["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"] == "prefect.server.concurrency.lease_storage.filesystem"
    assert env[stack.SERVER_DATABASE_URL] == "postgresql+asyncpg://db/prefect"
    assert env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] == "false"


def test_server_database_env_leaves_a_lease_storage_the_environment_names():
    environ = {
        stack.SERVER_DATABASE_URL: "postgresql+asyncpg://db/prefect",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
    }

    assert stack.server_database_env("", environ)["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"] == (
        "prefect_redis.lease_storage"
    )
