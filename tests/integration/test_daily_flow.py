"""The daily flow end to end: real Postgres, real HTTP to the local source server, real dbt."""

import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.concurrency.sync import rate_limit

from blocks import Warehouse
from flows.daily import daily_weather
from pipeline import warehouse
from pipeline.cli import main
from pipeline.extract import VARIABLES
from pipeline.ledger import incomplete_days
from pipeline.locations import read_locations
from pipeline.settings import PROJECT_ROOT
from pipeline.source_server import FaultPlan
from pipeline.tasks import TRANSFORM_LOCK
from pipeline.transform import profiles_dir

DAY = date(2024, 3, 9)
LOCATION_COUNT = 5


def run(logical_date=DAY, lookback_days=0):
    return daily_weather(logical_date=logical_date, lookback_days=lookback_days, return_state=True)


def failure_message(state) -> str:
    return str(state.result(raise_on_failure=False))


def task_runs(state) -> set[str]:
    """Names of the task runs of a flow run, as the Prefect server recorded them."""
    flow_run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        return {run.name for run in client.read_task_runs(flow_run_filter=flow_run_filter)}


def ran(state, prefix: str) -> bool:
    return any(name.startswith(prefix) for name in task_runs(state))


def checksums(db, table="raw"):
    return warehouse.day_checksums(db, table)


def test_daily_run_and_its_state_hook_open_the_warehouse_through_one_engine(pipeline_env, db, monkeypatch):
    # A receiver that is down: the hook's message stays in the outbox, proof that the hook used the warehouse.
    monkeypatch.setenv("PIPELINE_WEBHOOK_URL", "http://127.0.0.1:1/hook")
    # SQLAlchemy's first_connect fires once per pool, i.e. per engine, on its first connection; dbt's
    # own connections (psycopg2) do not go through SQLAlchemy.
    engines = []

    def first_connect(dbapi_connection, connection_record):
        engines.append(dbapi_connection.info.dbname)

    sqlalchemy.event.listen(sqlalchemy.pool.Pool, "first_connect", first_connect)
    try:
        state = run()
    finally:
        sqlalchemy.event.remove(sqlalchemy.pool.Pool, "first_connect", first_connect)

    assert state.is_completed(), failure_message(state)
    assert db.execute("select event_type from ops.outbox").fetchall() == [("pipeline.run.succeeded",)]
    assert engines == [db.info.dbname]


def test_daily_run_loads_every_hour_of_every_location_as_the_source_sent_it(pipeline_env, db, source, locations_file):
    state = run()

    assert state.is_completed(), failure_message(state)
    assert db.execute("select count(*) from raw.hourly_weather").fetchone()[0] == LOCATION_COUNT * 24
    assert db.execute("select count(*) from marts.fct_daily_weather").fetchone()[0] == LOCATION_COUNT
    assert db.execute("select count(*) from marts.dim_locations").fetchone()[0] == LOCATION_COUNT
    # What the source sent, asked for independently of the pipeline, one location at a time.
    for location in read_locations(locations_file):
        answer = httpx.get(
            f"{source.url}/v1/archive",
            params={
                "latitude": location.latitude,
                "longitude": location.longitude,
                "start_date": str(DAY),
                "end_date": str(DAY),
                "hourly": ",".join(VARIABLES),
                "timezone": "UTC",
            },
        ).json()["hourly"]
        stored = db.execute(
            f"select {', '.join(VARIABLES)} from raw.hourly_weather where location_id = %s order by observed_at",
            [location.location_id],
        ).fetchall()
        assert [list(row) for row in stored] == [
            list(hour) for hour in zip(*(answer[v] for v in VARIABLES), strict=True)
        ]
        t_min, t_max, precipitation = db.execute(
            "select temperature_2m_min, temperature_2m_max, precipitation_sum from marts.fct_daily_weather"
            " where location_id = %s and weather_date = %s",
            [location.location_id, DAY],
        ).fetchone()
        assert (t_min, t_max) == (min(answer["temperature_2m"]), max(answer["temperature_2m"]))
        assert precipitation == pytest.approx(sum(answer["precipitation"]), abs=1e-9)
    ledger = db.execute("select day, status, row_count from ops.load_ledger").fetchall()
    assert ledger == [(DAY, "succeeded", LOCATION_COUNT * 24)]
    assert state.result().rows_loaded == LOCATION_COUNT * 24


def test_dbt_unit_tests_pass(pipeline_env, db, tmp_path):
    """Scheduled runs skip dbt's unit tests (they check logic, not data); CI runs them here."""
    assert run().is_completed()
    dbt = Path(sys.executable).with_name("dbt")
    project = PROJECT_ROOT / "dbt_project"
    with profiles_dir(Warehouse.from_url(pipeline_env)) as profiles:
        result = subprocess.run(
            [
                str(dbt),
                "test",
                "--select",
                "test_type:unit",
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(profiles),
                "--target-path",
                str(tmp_path / "target"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "PASS=5" in result.stdout


def test_daily_run_is_idempotent_over_reruns_and_overlapping_windows(pipeline_env, db):
    assert run(lookback_days=1).is_completed()
    first_raw, first_mart = checksums(db), checksums(db, "mart")
    ledger = db.execute("select day, row_count, checksum from ops.load_ledger order by day").fetchall()

    assert run(lookback_days=1).is_completed()
    assert checksums(db) == first_raw
    assert checksums(db, "mart") == first_mart

    # The next day's run re-fetches DAY as lookback: same rows for DAY, one new day.
    assert run(DAY + timedelta(days=1), lookback_days=2).is_completed()
    after = checksums(db)
    assert {day: after[day] for day in first_raw} == first_raw
    assert sorted(after) == [DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)]
    assert all(count == keys == LOCATION_COUNT * 24 for count, keys, _ in after.values())
    assert db.execute(
        "select count(*) = count(distinct (location_id, observed_at)) from raw.hourly_weather"
    ).fetchone()[0]
    again = db.execute("select day, row_count, checksum from ops.load_ledger where day <= %s order by day", [DAY])
    assert again.fetchall()[-2:] == ledger


def test_transient_faults_at_a_high_rate_converge_to_the_clean_result(pipeline_env, db, source, monkeypatch):
    assert run(lookback_days=2).is_completed()
    clean_raw, clean_mart = checksums(db), checksums(db, "mart")
    db.execute("drop schema raw, ops, staging, audit, marts cascade")

    # One location per request: more requests, so the seeded faults hit many of them.
    monkeypatch.setenv("PIPELINE_LOCATIONS_PER_REQUEST", "1")
    source.faults = FaultPlan(server_error=0.25, rate_limited=0.15, slow=0.05, slow_seconds=2.5, reset=0.05, seed=11)
    state = run(lookback_days=2)

    assert state.is_completed(), failure_message(state)
    assert sum(source.faults_injected.values()) >= 3
    assert checksums(db) == clean_raw
    assert checksums(db, "mart") == clean_mart


def test_a_run_without_a_configured_warehouse_fails_naming_the_setting_and_starts_none(
    pipeline_env, monkeypatch, tmp_path
):
    monkeypatch.delenv("PIPELINE_DATABASE_URL")
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(tmp_path / "data"))

    state = run()

    assert state.is_failed()
    message = failure_message(state)
    assert message.startswith("prepare failed for 2024-03-09: no warehouse is configured")
    assert "PIPELINE_DATABASE_URL" in message and "weather-warehouse" in message
    assert not (tmp_path / "data").exists()


def test_a_400_fails_at_once_with_the_api_reason(pipeline_env, db, source):
    state = run(date(1939, 12, 31))

    assert state.is_failed()
    message = failure_message(state)
    assert message.startswith("extract failed for 1939-12-31: source API answered HTTP 400")
    assert "start_date" in message
    assert source.requests == 1  # the 400 ends the extract: no retry, no further request
    assert db.execute("select status, last_attempt_status from ops.load_ledger").fetchall() == [("failed", "failed")]


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        (FaultPlan(malformed=1.0), "invalid JSON"),
        (FaultPlan(unequal=1.0), "values, expected 24"),
        (FaultPlan(daily_limit=1.0), "Daily API request limit exceeded"),
    ],
    ids=["malformed-json", "unequal-arrays", "daily-quota"],
)
def test_a_bad_source_fails_extract_and_keeps_the_days_previous_rows(pipeline_env, db, source, faults, expected):
    assert run().is_completed()
    before_raw, before_mart = checksums(db), checksums(db, "mart")
    source.faults = faults

    state = run()

    assert state.is_failed()
    assert failure_message(state).startswith(f"extract failed for {DAY}: source API")
    assert expected in failure_message(state)
    assert checksums(db) == before_raw
    assert checksums(db, "mart") == before_mart
    # The day had landed and its rows are unchanged: it stays landed, the failed attempt beside it.
    status, row_count, attempt, error = db.execute(
        "select status, row_count, last_attempt_status, error from ops.load_ledger"
    ).fetchone()
    assert (status, row_count, attempt) == ("succeeded", LOCATION_COUNT * 24, "failed")
    assert expected in error
    assert not ran(state, "load-observations")
    assert not ran(state, "dbt-")


def test_a_failed_run_never_downgrades_a_day_that_has_landed(pipeline_env, db, source, capsys):
    assert run().is_completed()
    source.faults = FaultPlan(daily_limit=1.0)

    # The next day's run re-fetches DAY as its lookback, and its extract fails.
    assert run(DAY + timedelta(days=1), lookback_days=1).is_failed()

    ledger = db.execute(
        "select day, status, last_attempt_status, error is not null from ops.load_ledger order by day"
    ).fetchall()
    assert ledger == [(DAY, "succeeded", "failed", True), (DAY + timedelta(days=1), "failed", "failed", True)]
    assert main(["check-freshness", "--date", str(DAY)]) == 0
    assert capsys.readouterr().out.strip() == f"{DAY}: landed"


def test_a_run_stuck_behind_another_transform_fails_within_its_lock_timeout(pipeline_env, db, monkeypatch):
    monkeypatch.setenv("PIPELINE_TRANSFORM_LOCK_TIMEOUT_SECONDS", "1")
    # Another session holds the transform lock and never lets go, as a hung dbt would.
    with psycopg.connect(pipeline_env, autocommit=True, application_name="hung transform") as holder:
        holder.execute("select pg_advisory_lock(hashtext(%s))", [TRANSFORM_LOCK])
        state = run()

    assert state.is_failed()
    message = failure_message(state)
    assert message.startswith(f"dbt build failed for {DAY}: waited 1 s for the lock 'weather-pipeline dbt', held by")
    assert "hung transform" in message
    assert not ran(state, "dbt-")
    # The stuck run let go of everything: the next one runs through.
    assert run().is_completed()


def test_a_load_stuck_behind_a_lock_on_its_days_fails_within_its_lock_timeout(pipeline_env, db, monkeypatch):
    monkeypatch.setenv("PIPELINE_LOCK_TIMEOUT_SECONDS", "1")
    day_key = (DAY - date(2000, 1, 1)).days
    with psycopg.connect(pipeline_env, autocommit=True) as holder:
        # The lock a load of DAY takes (lock_days.sql), held by a session that never commits.
        holder.execute("select pg_advisory_lock(hashtext('raw.hourly_weather'), %s)", [day_key])
        state = run()

    assert state.is_failed()
    assert failure_message(state) == (
        f"load failed for {DAY}: waited 1s for a lock on the window's days or the raw tables, "
        "held by another session (PIPELINE_LOCK_TIMEOUT_SECONDS)"
    )
    assert not ran(state, "dbt-")
    assert db.execute("select status from ops.load_ledger").fetchall() == [("failed",)]


def test_a_run_that_cannot_get_rate_limit_slots_fails_within_its_timeout(pipeline_env, db, monkeypatch):
    name = "weather-test-exhausted-limit"
    with get_client(sync_client=True) as client:
        # Every slot taken, and freed far too slowly for the run to get one.
        client.upsert_global_concurrency_limit_by_name(name, 10, slot_decay_per_second=0.0001)
    rate_limit(name, occupy=10)
    monkeypatch.setenv("PIPELINE_SOURCE_RATE_LIMIT", name)
    monkeypatch.setenv("PIPELINE_RATE_LIMIT_TIMEOUT_SECONDS", "1")

    state = run()

    assert state.is_failed()
    assert failure_message(state).startswith(
        f"extract failed for {DAY}: waited 1 s for 2 slots of the rate limit '{name}'"
    )
    assert not ran(state, "load-observations")


def test_every_attempt_at_a_request_counts_against_the_api_budget_retries_included(
    pipeline_env, db, source, monkeypatch
):
    # The budgets apply against a rate-limited (public) API: one that never makes anyone wait.
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name("weather-test-generous", 100_000, slot_decay_per_second=10_000)
    monkeypatch.setenv("PIPELINE_SOURCE_RATE_LIMIT", "weather-test-generous")
    # One location and one day per request: every attempt weighs one call.
    monkeypatch.setenv("PIPELINE_LOCATIONS_PER_REQUEST", "1")
    source.faults = FaultPlan(server_error=0.4, seed=3)

    state = run()

    assert state.is_completed(), failure_message(state)
    assert source.requests > LOCATION_COUNT  # some requests were tried again
    assert db.execute("select sum(calls) from ops.api_calls").fetchone()[0] == source.requests


def test_a_failed_load_rolls_back_and_runs_no_dbt(pipeline_env, db):
    assert run().is_completed()
    # Rows lost since the last load make the day differ from its ledger entry: it must be rewritten.
    db.execute("delete from raw.hourly_weather where location_id = 'ams'")
    before = checksums(db)
    # A constraint every new row violates: the COPY fails half-way through the window.
    db.execute("alter table raw.hourly_weather add constraint no_more_rows check (location_id = 'none') not valid")

    state = run()

    assert state.is_failed()
    assert failure_message(state).startswith(f"load failed for {DAY}:")
    assert "no_more_rows" in failure_message(state)
    assert checksums(db) == before
    assert ran(state, "load-observations")
    assert not ran(state, "dbt-")


def test_a_broken_model_fails_the_build_and_publishes_nothing(pipeline_env, db, tmp_path, monkeypatch):
    project = shutil.copytree(
        PROJECT_ROOT / "dbt_project", tmp_path / "dbt_project", ignore=shutil.ignore_patterns("target", "logs")
    )
    model = project / "models" / "marts" / "fct_daily_weather.sql"
    model.write_text(model.read_text().replace("from hourly", "from hourly_typo"))
    monkeypatch.setenv("PIPELINE_DBT_PROJECT_DIR", str(project))

    state = run()

    assert state.is_failed()
    assert failure_message(state).startswith(f"dbt build failed for {DAY}: dbt build: ")
    assert "fct_daily_weather" in failure_message(state)
    assert db.execute("select count(*) from raw.hourly_weather").fetchone()[0] == LOCATION_COUNT * 24
    assert db.execute("select count(*) from marts.fct_daily_weather").fetchone()[0] == 0
    assert "dbt-build" in task_runs(state)
    assert "publish-window" not in task_runs(state)


def test_a_failing_dbt_test_fails_the_run_naming_the_test_and_day_and_keeps_marts(pipeline_env, db):
    assert run(DAY - timedelta(days=1)).is_completed()  # sets up the warehouse; DAY itself is new
    before = checksums(db, "mart"), db.execute("select * from marts.dim_locations order by 1").fetchall()
    # An implausible reading slips through the source: the mart's range test must catch it.
    db.execute(
        "create function raw.spoil() returns trigger language plpgsql as $$"
        " begin if new.location_id = 'ams' and extract(hour from new.observed_at at time zone 'UTC') = 12"
        " then new.temperature_2m := 500; end if; return new; end $$"
    )
    db.execute("create trigger spoil before insert on raw.hourly_weather for each row execute function raw.spoil()")

    state = run(lookback_days=1)

    assert state.is_failed()
    message = failure_message(state)
    assert message.startswith(f"dbt build failed for {DAY - timedelta(days=1)}..{DAY}: dbt build: ")
    # The spoiled readings are all on DAY: the lookback day is unchanged, so it is not rewritten.
    assert f"stg_hourly_weather_temperature_2m_range (1 rows on {DAY})" in message
    assert (checksums(db, "mart"), db.execute("select * from marts.dim_locations order by 1").fetchall()) == before
    assert "publish-window" not in task_runs(state)


def test_a_hot_day_stays_out_of_the_published_marts_until_a_good_run_publishes_it(pipeline_env, db, source):
    assert run(DAY - timedelta(days=1)).is_completed()
    published = checksums(db, "mart")
    # 99 °C at one location on DAY only: well-formed, so only the data tests can stop it.
    source.faults = FaultPlan(hot_day=1.0, only_on=DAY)

    state = run(lookback_days=1)

    assert state.is_failed()
    message = failure_message(state)
    assert message.startswith(f"dbt build failed for {DAY - timedelta(days=1)}..{DAY}: dbt build: ")
    # The first location of each of the 3 requests (2 locations each): 3 × 24 hours.
    assert f"stg_hourly_weather_temperature_2m_range (72 rows on {DAY})" in message
    assert checksums(db, "mart") == published  # marts exactly as they were: DAY not there at all
    assert db.execute("select max(temperature_2m) from raw.hourly_weather").fetchone()[0] == 99.0
    # The failing day is marked failed (a plain `--reprocess failed` re-fetches it); the other is not.
    ledger = dict(db.execute("select day, status from ops.load_ledger").fetchall())
    assert ledger == {DAY - timedelta(days=1): "succeeded", DAY: "failed"}

    source.faults = FaultPlan()
    assert run(lookback_days=1).is_completed()

    after = checksums(db, "mart")
    assert sorted(after) == [DAY - timedelta(days=1), DAY]
    assert after[DAY - timedelta(days=1)] == published[DAY - timedelta(days=1)]
    assert db.execute("select max(temperature_2m_max) from marts.fct_daily_weather").fetchone()[0] < 60


def test_an_incomplete_day_is_refetched_while_inside_the_revision_horizon(pipeline_env, db, source, monkeypatch):
    # The archive has DAY only until noon: the afternoon hours come back null.
    source.faults = FaultPlan(available_until=datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=UTC))
    assert run().is_completed()
    ledger = "select status, row_count, complete_hours from ops.load_ledger where day = %s"
    assert db.execute(ledger, [DAY]).fetchone() == ("incomplete", LOCATION_COUNT * 24, LOCATION_COUNT * 12)
    assert db.execute("select max(hours_observed) from marts.fct_daily_weather").fetchone() == (12,)
    source.faults = FaultPlan()  # the archive has filled the day since

    # Three days on with a 2-day horizon, DAY is past it: not fetched again, and listed.
    monkeypatch.setenv("PIPELINE_REVISION_HORIZON_DAYS", "2")
    assert run(DAY + timedelta(days=3)).is_completed()
    assert db.execute(ledger, [DAY]).fetchone()[0] == "incomplete"
    assert incomplete_days(db, DAY + timedelta(days=1)) == [DAY]

    # With the default horizon (10 days) the daily run re-fetches it on its own.
    monkeypatch.delenv("PIPELINE_REVISION_HORIZON_DAYS")
    state = run(DAY + timedelta(days=4))

    assert state.is_completed()
    assert state.result().window.first_day == DAY
    assert db.execute(ledger, [DAY]).fetchone() == ("succeeded", LOCATION_COUNT * 24, LOCATION_COUNT * 24)
    assert db.execute(
        "select min(hours_observed) from marts.fct_daily_weather where weather_date = %s", [DAY]
    ).fetchone() == (24,)
    assert incomplete_days(db, DAY + timedelta(days=5)) == []
