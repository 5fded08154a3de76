from datetime import date

from dbt_common.events.base_types import EventLevel
from prefect.settings import PREFECT_LOGGING_LEVEL, temporary_settings

from pipeline.transform import (
    DbtOutcome,
    NodeFailure,
    dbt_args,
    dbt_log_level,
    dbt_vars,
    describe_failures,
    profile_env,
)
from pipeline.window import Window

WINDOW = Window(date(2024, 3, 4), date(2024, 3, 9))


def test_dbt_vars_are_the_window_as_half_open_dates():
    assert dbt_vars(WINDOW) == {"window_start": "2024-03-04", "window_end": "2024-03-10"}


def test_dbt_args_pass_the_window_and_leave_unit_tests_to_ci():
    assert dbt_args("run", WINDOW) == ["run", "--vars", '{"window_end": "2024-03-10", "window_start": "2024-03-04"}']
    assert dbt_args("test", WINDOW)[-2:] == ["--exclude-resource-type", "unit_test"]


def test_profile_env_reads_a_url_or_socket_dsn_and_marks_the_password_secret():
    env = profile_env("postgresql://etl:s3cret@db.internal:6543/warehouse")
    assert env == {
        "PIPELINE_DBT_HOST": "db.internal",
        "PIPELINE_DBT_PORT": "6543",
        "PIPELINE_DBT_USER": "etl",
        "PIPELINE_DBT_DBNAME": "warehouse",
        "DBT_ENV_SECRET_PASSWORD": "s3cret",
    }
    socket = profile_env("postgresql://postgres:@/weather?host=/tmp/pg")
    assert (socket["PIPELINE_DBT_HOST"], socket["PIPELINE_DBT_DBNAME"]) == ("/tmp/pg", "weather")


def test_describe_failures_names_each_failing_node_with_its_row_count():
    outcome = DbtOutcome(
        "test",
        {"pass": 40, "fail": 2},
        (
            NodeFailure("fct_daily_weather_temperature_2m_max_range", "fail", 3, "Got 3 results"),
            NodeFailure("assert_temperature_min_le_mean_le_max", "error", None, "relation missing"),
        ),
    )
    assert describe_failures(outcome) == (
        "dbt test: 2 failed: fct_daily_weather_temperature_2m_max_range (3 rows), "
        "assert_temperature_min_le_mean_le_max (error)"
    )


def test_dbt_log_level_maps_prefects_warning_to_dbts_warn():
    with temporary_settings({PREFECT_LOGGING_LEVEL: "WARNING"}):
        assert dbt_log_level() == EventLevel.WARN


def test_profile_env_passes_the_dsns_options_to_dbt_as_pgoptions():
    env = profile_env("postgresql://etl@db/warehouse?options=-c%20lock_timeout%3D1000")

    assert env["PGOPTIONS"] == "-c lock_timeout=1000"
