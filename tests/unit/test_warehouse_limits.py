import pytest

from blocks import Warehouse
from pipeline.warehouse import session_options

LIMITS = "-c lock_timeout=30000 -c statement_timeout=600000"


def test_session_options_are_lock_and_statement_timeouts_in_milliseconds():
    assert session_options(30, 600) == LIMITS


@pytest.mark.parametrize(("seconds", "milliseconds"), [(0, 1), (0.0001, 1), (1.5, 1500)])
def test_session_options_never_pass_zero_which_postgres_reads_as_no_limit(seconds, milliseconds):
    assert session_options(seconds, seconds) == f"-c lock_timeout={milliseconds} -c statement_timeout={milliseconds}"


def test_warehouse_options_keep_the_urls_own_options_before_the_limits():
    warehouse = Warehouse.from_url("host=/tmp/pg dbname=weather options='-c search_path=raw'")

    assert warehouse.with_session_limits(30, 600).options() == f"-c search_path=raw {LIMITS}"
    assert warehouse.host == "/tmp/pg"


def test_warehouse_with_session_limits_applied_twice_adds_them_once():
    once = Warehouse.from_url("postgresql://etl@db/warehouse").with_session_limits(30, 600)

    assert once.with_session_limits(30, 600).options() == LIMITS
