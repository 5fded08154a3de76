"""Backfills: same result as daily runs, skip what is loaded, resume after SIGKILL, survive faults."""

import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from prefect import get_client
from prefect.settings import PREFECT_API_URL

from flows.backfill import backfill_chunk, backfill_weather
from flows.daily import daily_weather
from pipeline import warehouse
from pipeline.cli import main
from pipeline.locations import read_locations
from pipeline.source_server import FaultPlan
from tests.support import poll_until

START, END = date(2024, 2, 27), date(2024, 3, 1)  # across a leap day
DAYS = 4
LOCATION_COUNT = 5


def backfill(start=START, end=END, **kwargs):
    state = backfill_weather(start_date=start, end_date=end, return_state=True, **kwargs)
    assert state.is_completed(), str(state.result(raise_on_failure=False))
    return state.result()


def state_of(db):
    return warehouse.day_checksums(db, "raw"), warehouse.day_checksums(db, "mart")


def test_a_chunk_run_of_several_chunks_loads_them_one_after_another_as_a_backfill_would(
    pipeline_env, db, source, locations_file
):
    backfill(reprocess="all")
    reference = state_of(db)[0]
    ids = [location.location_id for location in read_locations(locations_file)]
    source.reset_counters()

    # What a spread backfill hands one flow run: two 2-day chunks of the four days.
    state = backfill_chunk(START, END, ids, force=True, chunk_days=2, return_state=True)

    assert state.is_completed(), str(state.result(raise_on_failure=False))
    assert state.result() == DAYS * 24 * LOCATION_COUNT
    assert source.requests == 2 * 3  # two chunks, each 5 locations in requests of 2
    assert state_of(db)[0] == reference
    loaded_by = db.execute("select distinct flow_run_id from ops.load_ledger where day between %s and %s", [START, END])
    assert [str(run_id) for (run_id,) in loaded_by] == [str(state.state_details.flow_run_id)]


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setenv("PIPELINE_BACKFILL_CHUNK_DAYS", "2")


def test_backfill_equals_the_same_days_loaded_by_daily_runs(pipeline_env, db, small_chunks):
    day = START
    while day <= END:
        assert daily_weather(logical_date=day, lookback_days=0, return_state=True).is_completed()
        day += timedelta(days=1)
    daily_raw, daily_mart = state_of(db)
    daily_ledger = db.execute("select day, row_count, checksum from ops.load_ledger order by day").fetchall()
    db.execute("drop schema raw, ops, staging, audit, marts cascade")

    summary = backfill()

    assert state_of(db) == (daily_raw, daily_mart)
    assert db.execute("select day, row_count, checksum from ops.load_ledger order by day").fetchall() == daily_ledger
    assert len(daily_raw) == DAYS and all(n == keys == LOCATION_COUNT * 24 for n, keys, _ in daily_raw.values())
    assert summary.days_planned == DAYS
    assert summary.rows_loaded == DAYS * 24 * LOCATION_COUNT
    assert summary.dbt_tests.counts["pass"] > 0


def test_rerunning_a_finished_backfill_makes_no_api_call_and_no_write(pipeline_env, db, source, small_chunks):
    backfill()
    before = state_of(db), db.execute("select * from ops.load_ledger order by day").fetchall()
    loaded_at = db.execute("select max(_loaded_at) from raw.hourly_weather").fetchone()
    source.reset_counters()

    summary = backfill()

    assert source.requests == 0
    assert summary.days_planned == 0 and summary.dbt_tests is None
    assert (state_of(db), db.execute("select * from ops.load_ledger order by day").fetchall()) == before
    assert db.execute("select max(_loaded_at) from raw.hourly_weather").fetchone() == loaded_at


def test_reprocess_failed_and_all_reload_what_they_say(pipeline_env, db, source, small_chunks):
    backfill()
    db.execute("update ops.load_ledger set status = 'failed' where day = %s", [START + timedelta(days=2)])
    source.reset_counters()

    assert backfill(reprocess="missing").days_planned == 0
    assert backfill(reprocess="failed").days_planned == 1
    assert source.requests == 3  # one day, 5 locations in requests of 2
    assert db.execute("select count(*) from ops.load_ledger where status = 'failed'").fetchone()[0] == 0
    assert backfill(reprocess="all").days_planned == DAYS


def test_transient_faults_during_a_backfill_give_the_clean_result(pipeline_env, db, source, small_chunks, monkeypatch):
    backfill()
    clean = state_of(db)
    db.execute("drop schema raw, ops, staging, audit, marts cascade")
    monkeypatch.setenv("PIPELINE_LOCATIONS_PER_REQUEST", "1")  # more requests for the faults to hit
    # Half the requests fail. Seed 2's first 200 draws hold no run of more than 5 faults, so no
    # request can exhaust its 10 retries whatever order the two chunks' requests arrive in.
    source.faults = FaultPlan(server_error=0.25, rate_limited=0.15, reset=0.05, slow=0.05, slow_seconds=2.5, seed=2)

    backfill()

    assert sum(source.faults_injected.values()) > 0
    assert state_of(db) == clean


def test_a_backfill_killed_mid_way_resumes_to_the_full_result(pipeline_env, db, source, monkeypatch, tmp_path):
    start, end = START, START + timedelta(days=19)
    monkeypatch.setenv("PIPELINE_BACKFILL_CHUNK_DAYS", "1")
    monkeypatch.setenv("PIPELINE_BACKFILL_WORKERS", "1")
    # Slow answers (well inside the client timeout) give the kill a window to land in.
    source.faults = FaultPlan(slow=0.5, slow_seconds=0.4, seed=3)
    env = os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_HOME": str(tmp_path / "prefect")}
    pipeline = Path(sys.executable).with_name("pipeline")
    process = subprocess.Popen(
        [str(pipeline), "backfill", "--start", str(start), "--end", str(end)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def loaded_days() -> int:
        with psycopg.connect(pipeline_env, autocommit=True) as conn:
            if not conn.execute("select to_regclass('ops.load_ledger')").fetchone()[0]:
                return 0
            return conn.execute("select count(*) from ops.load_ledger where status = 'succeeded'").fetchone()[0]

    try:
        poll_until(
            lambda: process.poll() is not None or loaded_days() >= 3,
            timeout=180,
            interval=0.2,
            what="the backfill to load three days",
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    loaded = loaded_days()
    assert 3 <= loaded < 20, "the kill should land mid-way"
    source.faults = FaultPlan()

    summary = backfill(start, end)

    assert summary.days_planned < 20  # what was loaded before the kill is not fetched again
    resumed = state_of(db)
    assert sorted(resumed[0]) == [start + timedelta(days=n) for n in range(20)]
    assert all(n == keys == LOCATION_COUNT * 24 for n, keys, _ in resumed[0].values())
    assert sorted(resumed[1]) == sorted(resumed[0])
    db.execute("drop schema raw, ops, staging, audit, marts cascade")
    monkeypatch.setenv("PIPELINE_BACKFILL_CHUNK_DAYS", "20")
    backfill(start, end)
    assert state_of(db) == resumed


def test_dry_run_prints_the_plan_and_changes_nothing(pipeline_env, db, capsys, source, small_chunks):
    assert main(["backfill", "--start", str(START), "--end", str(END), "--dry-run"]) == 0

    out = capsys.readouterr().out
    assert "4 of 4 days to load in 2 chunks (4 never loaded)" in out
    assert "480 rows expected" in out
    assert source.requests == 0
    assert db.execute("select to_regnamespace('raw')").fetchone()[0] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2024-03-04", "--end", "2024-03-01"], "--end 2024-03-01 is before --start 2024-03-04"),
        (["--start", "2024-02-30", "--end", "2024-03-01"], "argument --start: date '2024-02-30' is not a valid date"),
        (["--start", "2024-03-01", "--end", "2999-01-01"], "argument --end: date 2999-01-01 is not in the past"),
        (["--start", "2000-01-01", "--end", "2024-01-01"], "more than PIPELINE_BACKFILL_MAX_DAYS=400: pass --yes"),
    ],
)
def test_backfill_rejects_bad_input_and_changes_nothing(pipeline_env, db, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["backfill", *args]))

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert db.execute("select to_regnamespace('raw')").fetchone()[0] is None


def test_gaps_lists_missing_and_failed_days_and_the_command_to_fill_them(pipeline_env, db, capsys):
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert daily_weather(logical_date=yesterday, lookback_days=2, return_state=True).is_completed()
    db.execute("update ops.load_ledger set status = 'failed' where day = %s", [yesterday - timedelta(days=1)])

    assert main(["gaps", "--since", str(yesterday - timedelta(days=4))]) == 1

    out = capsys.readouterr().out
    assert f"missing:    {yesterday - timedelta(days=4)}..{yesterday - timedelta(days=3)}" in out
    assert f"failed:     {yesterday - timedelta(days=1)}" in out
    assert f"pipeline backfill --start {yesterday - timedelta(days=4)} --end {yesterday - timedelta(days=3)}\n" in out
    assert f"--start {yesterday - timedelta(days=1)} --end {yesterday - timedelta(days=1)} --reprocess failed" in out


def test_a_backfill_stops_cleanly_when_the_hourly_api_budget_is_spent_and_resumes(
    pipeline_env, db, monkeypatch, capsys
):
    # The budgets apply against a rate-limited (public) API: one that never makes anyone wait.
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name("weather-test-generous", 100_000, slot_decay_per_second=10_000)
    monkeypatch.setenv("PIPELINE_SOURCE_RATE_LIMIT", "weather-test-generous")
    monkeypatch.setenv("PIPELINE_BACKFILL_CHUNK_DAYS", "1")
    # Each one-day chunk is 3 requests (2 + 2 + 1 locations): 5 calls. Two chunks fit in 12.
    monkeypatch.setenv("PIPELINE_API_CALLS_PER_HOUR", "12")
    args = ["backfill", "--start", str(START), "--end", str(END)]

    assert main([*args, "--dry-run"]) == 0
    dry_run = capsys.readouterr().out
    assert main(args) == 3
    stopped = capsys.readouterr().out
    loaded = db.execute("select count(*) from ops.load_ledger where status = 'succeeded'").fetchone()[0]
    counted = db.execute("select sum(calls) from ops.api_calls").fetchone()[0]
    monkeypatch.setenv("PIPELINE_API_CALLS_PER_HOUR", "1000")
    assert main(args) == 0

    assert "API budget: 20 calls planned; this hour 0 used of 12; today 0 used of 10,000" in dry_run
    assert "only 2 of 4 chunks (10 calls) fit in the hourly budget now" in dry_run
    assert "pipeline backfill stopped: 2 of 4 days loaded" in stopped
    assert "the API's hourly call budget is spent; resume after " in stopped
    assert (loaded, counted) == (2, 10)
    assert db.execute("select count(*) from ops.load_ledger where status = 'succeeded'").fetchone()[0] == DAYS
    assert db.execute("select sum(calls) from ops.api_calls").fetchone()[0] == 20


def test_reprocess_transform_rebuilds_and_publishes_the_range_without_calling_the_api(
    pipeline_env, db, source, small_chunks
):
    backfill()
    before = state_of(db)
    db.execute("delete from marts.fct_daily_weather where weather_date >= %s", [START + timedelta(days=1)])
    source.reset_counters()

    summary = backfill(reprocess="transform")

    assert source.requests == 0
    assert summary.days_planned == 0
    assert summary.dbt_tests.counts["pass"] > 0
    assert state_of(db) == before
