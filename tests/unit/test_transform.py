import logging
import os
from datetime import date
from types import SimpleNamespace

from pipeline.transform import (
    DbtOutcome,
    NodeFailure,
    _forward_to,
    dbt_args,
    describe_failures,
    failing_days,
    profile_env,
    window_params,
)
from pipeline.window import Window

WINDOW = Window(date(2024, 3, 4), date(2024, 3, 9))


def test_window_params_are_the_window_as_half_open_dates():
    assert window_params(WINDOW) == {"first_day": date(2024, 3, 4), "end_day": date(2024, 3, 10)}


def test_dbt_args_are_one_build_without_vars_and_leave_unit_tests_to_ci():
    # No --vars: a changed var makes dbt re-parse the whole project on every run.
    assert dbt_args() == ["build", "--exclude-resource-type", "unit_test"]


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


def test_describe_failures_names_each_failing_node_with_its_row_count_and_days():
    days = (date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 8))
    outcome = DbtOutcome(
        "build",
        {"pass": 40, "fail": 2},
        (
            NodeFailure("fct_daily_weather_temperature_2m_max_range", "fail", 3, "Got 3 results", days=days),
            NodeFailure("stg_hourly_weather_location_id_known", "fail", 2, "Got 2 results"),
            NodeFailure("assert_temperature_min_le_mean_le_max", "error", None, "relation missing"),
        ),
    )
    assert describe_failures(outcome) == (
        "dbt build: 3 failed: fct_daily_weather_temperature_2m_max_range (3 rows on 2024-03-04..2024-03-05, "
        "2024-03-08), stg_hourly_weather_location_id_known (2 rows), assert_temperature_min_le_mean_le_max (error)"
    )


def event(level: str, msg: str, name: str = "LogTestResult") -> SimpleNamespace:
    """The fields of a dbt EventMsg that the forwarder reads."""
    return SimpleNamespace(info=SimpleNamespace(level=level, msg=msg, name=name))


def test_dbt_events_reach_the_log_at_its_level_without_noise_or_secrets(caplog, monkeypatch):
    monkeypatch.setitem(os.environ, "DBT_ENV_SECRET_PASSWORD", "s3cret-pw")
    log = logging.getLogger("test.dbt.forward")
    forward = _forward_to(log)
    with caplog.at_level(logging.DEBUG, logger="test.dbt.forward"):
        log.setLevel(logging.WARNING)
        forward(event("info", "1 of 48 PASS stg_hourly_weather_unique_location_hour"))
        forward(event("warn", "Database error while connecting as etl with s3cret-pw"))
        forward(event("error", "connection refused", name="NewConnection"))
        log.setLevel(logging.INFO)
        forward(event("info", "2 of 48 PASS fct_daily_weather_unique_location_day"))
        forward(event("info", "2 of 48 START test", name="LogStartLine"))
        forward(event("debug", "acquiring connection"))

    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "dbt: Database error while connecting as etl with *****"),
        (logging.INFO, "dbt: 2 of 48 PASS fct_daily_weather_unique_location_day"),
    ]


def test_profile_env_passes_the_dsns_options_to_dbt_as_pgoptions():
    env = profile_env("postgresql://etl@db/warehouse?options=-c%20lock_timeout%3D1000")

    assert env["PGOPTIONS"] == "-c lock_timeout=1000"


def test_failing_days_are_the_days_named_by_any_failing_test():
    outcome = DbtOutcome(
        "build",
        {"fail": 2},
        (
            NodeFailure("a", "fail", 1, "", days=(date(2024, 3, 5), date(2024, 3, 4))),
            NodeFailure("b", "fail", 1, "", days=(date(2024, 3, 5),)),
            NodeFailure("c", "error", None, ""),
        ),
    )
    assert failing_days(outcome) == [date(2024, 3, 4), date(2024, 3, 5)]
    assert failing_days(None) == []
