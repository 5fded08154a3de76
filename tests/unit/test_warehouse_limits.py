import psycopg
import pytest

from pipeline.warehouse import with_timeouts

LIMITS = "-c lock_timeout=30000 -c statement_timeout=600000"


def options(dsn: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(dsn)["options"]


def test_with_timeouts_adds_lock_and_statement_timeouts_in_milliseconds_to_a_url_dsn():
    dsn = with_timeouts("postgresql://etl:s3cret@db.internal:6543/warehouse", 30, 600)

    info = psycopg.conninfo.conninfo_to_dict(dsn)
    assert info["options"] == LIMITS
    assert (info["host"], info["port"], info["user"], info["password"], info["dbname"]) == (
        "db.internal",
        "6543",
        "etl",
        "s3cret",
        "warehouse",
    )


def test_with_timeouts_keeps_the_dsns_own_options_and_socket_host():
    dsn = with_timeouts("host=/tmp/pg dbname=weather options='-c search_path=raw'", 30, 600)

    assert options(dsn) == f"-c search_path=raw {LIMITS}"
    assert psycopg.conninfo.conninfo_to_dict(dsn)["host"] == "/tmp/pg"


def test_with_timeouts_applied_twice_adds_them_once():
    once = with_timeouts("postgresql://etl@db/warehouse", 30, 600)

    assert with_timeouts(once, 30, 600) == once


@pytest.mark.parametrize(("seconds", "milliseconds"), [(0, 1), (0.0001, 1), (1.5, 1500)])
def test_with_timeouts_never_passes_zero_which_postgres_reads_as_no_limit(seconds, milliseconds):
    dsn = with_timeouts("postgresql://etl@db/warehouse", seconds, seconds)

    assert options(dsn) == f"-c lock_timeout={milliseconds} -c statement_timeout={milliseconds}"
