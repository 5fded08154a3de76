import json
import logging
import os
import stat
from datetime import date
from types import SimpleNamespace

import pytest
from dbt_common.events.base_types import EventLevel

from blocks import Warehouse
from pipeline.transform import (
    DbtOutcome,
    NodeFailure,
    _forward_to,
    dbt_args,
    dbt_environment,
    dbt_event_level,
    describe_failures,
    failing_days,
    profile,
    profiles_dir,
    window_params,
)
from pipeline.window import Window

DSN = "postgresql://etl:s3cret@db.internal:6543/warehouse"

WINDOW = Window(date(2024, 3, 4), date(2024, 3, 9))


def test_window_params_are_the_window_as_half_open_dates():
    assert window_params(WINDOW) == {"first_day": date(2024, 3, 4), "end_day": date(2024, 3, 10)}


def test_dbt_args_are_one_build_without_vars_and_leave_unit_tests_to_ci():
    # No --vars: a changed var makes dbt re-parse the whole project on every run.
    assert dbt_args() == ["build", "--exclude-resource-type", "unit_test"]


def test_profile_is_the_projects_weather_profile_aimed_at_the_warehouse():
    rendered = profile(Warehouse.from_url(DSN))

    target = rendered["weather"]["outputs"][rendered["weather"]["target"]]
    assert (target["host"], target["port"], target["user"], target["password"], target["dbname"]) == (
        "db.internal",
        6543,
        "etl",
        "s3cret",
        "warehouse",
    )
    socket = profile(Warehouse.from_url("postgresql://postgres:@/weather?host=/tmp/pg"))["weather"]["outputs"]["prod"]
    assert (socket["host"], socket["dbname"]) == ("/tmp/pg", "weather")


def test_profiles_dir_is_private_holds_the_password_literally_and_is_removed_after():
    warehouse = Warehouse.from_url("postgresql://etl:p%7B%7Bw%25d@db/warehouse")

    with profiles_dir(warehouse) as folder:
        path = folder / "profiles.yml"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        written = json.loads(path.read_text())["weather"]["outputs"]["prod"]["password"]

    assert written == "{% raw %}p{{w%d{% endraw %}"
    assert not folder.exists()


def test_dbt_environment_holds_the_session_limits_and_no_secret():
    env = dbt_environment(Warehouse.from_url(DSN).with_session_limits(1, 2))

    assert env["PGOPTIONS"] == "-c lock_timeout=1000 -c statement_timeout=2000"
    assert env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"
    assert "s3cret" not in json.dumps(env)
    assert "PGOPTIONS" not in dbt_environment(Warehouse.from_url(DSN))


@pytest.mark.parametrize(
    ("prefect_level", "dbt_level"),
    [
        ("DEBUG", EventLevel.DEBUG),
        ("INFO", EventLevel.INFO),
        ("WARNING", EventLevel.WARN),
        ("CRITICAL", EventLevel.ERROR),
    ],
)
def test_dbt_event_level_maps_every_prefect_level_including_warning(prefect_level, dbt_level):
    assert dbt_event_level(prefect_level) == dbt_level


def test_describe_failures_names_each_failing_node_with_its_row_count_and_days():
    days = (date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 8))
    outcome = DbtOutcome(
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
    forward = _forward_to(log, Warehouse.from_url("postgresql://etl:pw-in-the-block@db/warehouse"))
    with caplog.at_level(logging.DEBUG, logger="test.dbt.forward"):
        log.setLevel(logging.WARNING)
        forward(event("info", "1 of 48 PASS stg_hourly_weather_unique_location_hour"))
        forward(event("warn", "Database error while connecting as etl with s3cret-pw"))
        forward(event("warn", "password pw-in-the-block rejected"))
        forward(event("error", "connection refused", name="NewConnection"))
        log.setLevel(logging.INFO)
        forward(event("info", "2 of 48 PASS fct_daily_weather_unique_location_day"))
        forward(event("info", "2 of 48 START test", name="LogStartLine"))
        forward(event("debug", "acquiring connection"))

    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "dbt: Database error while connecting as etl with *****"),
        (logging.WARNING, "dbt: password ***** rejected"),
        (logging.INFO, "dbt: 2 of 48 PASS fct_daily_weather_unique_location_day"),
    ]


def test_failing_days_are_the_days_named_by_any_failing_test():
    outcome = DbtOutcome(
        {"fail": 2},
        (
            NodeFailure("a", "fail", 1, "", days=(date(2024, 3, 5), date(2024, 3, 4))),
            NodeFailure("b", "fail", 1, "", days=(date(2024, 3, 5),)),
            NodeFailure("c", "error", None, ""),
        ),
    )
    assert failing_days(outcome) == [date(2024, 3, 4), date(2024, 3, 5)]
    assert failing_days(None) == []
