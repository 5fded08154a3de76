"""Locations come and go: history stays, retired; a new one is filled by a plain backfill, alone."""

from datetime import UTC, date, datetime, timedelta

import pytest

from flows.backfill import backfill_weather
from flows.daily import daily_weather
from pipeline import warehouse
from pipeline.cli import main

START, END = date(2024, 2, 27), date(2024, 3, 1)


def backfill(start=START, end=END, **kwargs):
    state = backfill_weather(start_date=start, end_date=end, return_state=True, **kwargs)
    assert state.is_completed(), str(state.result(raise_on_failure=False))
    return state.result()


def daily(day, lookback_days=0):
    state = daily_weather(logical_date=day, lookback_days=lookback_days, return_state=True)
    assert state.is_completed(), str(state.result(raise_on_failure=False))


def state_of(db):
    return warehouse.day_checksums(db, "raw"), warehouse.day_checksums(db, "mart")


@pytest.fixture
def use_locations(monkeypatch, tmp_path, locations_file):
    """Point the pipeline at a locations file with the test locations, edited by `change`."""

    def use(change=lambda text: text) -> None:
        path = tmp_path / f"locations-{len(list(tmp_path.iterdir()))}.csv"
        path.write_text(change(locations_file.read_text(encoding="utf-8")), encoding="utf-8")
        monkeypatch.setenv("PIPELINE_LOCATIONS_FILE", str(path))

    return use


def without_sydney(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("syd,"))


def test_a_removed_location_keeps_its_history_and_later_runs_and_old_backfills_pass(pipeline_env, db, use_locations):
    backfill()
    sydney = "select count(*) from {} where location_id = 'syd'"
    assert db.execute(sydney.format("marts.fct_daily_weather")).fetchone()[0] == 4
    use_locations(without_sydney)

    daily(END + timedelta(days=1), lookback_days=2)  # its lookback days held Sydney's rows
    backfill(reprocess="missing")
    backfill(reprocess="all")  # rewrites the other locations' rows of the old range

    assert db.execute(sydney.format("raw.hourly_weather")).fetchone()[0] == 4 * 24
    assert db.execute(sydney.format("marts.fct_daily_weather")).fetchone()[0] == 4
    assert db.execute(
        "select is_active, retired_at is not null, first_observed_date, last_observed_date"
        " from marts.dim_locations where location_id = 'syd'"
    ).fetchone() == (False, True, START, END)
    assert db.execute("select count(*) from marts.dim_locations where is_active").fetchone()[0] == 4
    assert (
        db.execute(
            "select count(*) from marts.fct_daily_weather where weather_date = %s", [END + timedelta(days=1)]
        ).fetchone()[0]
        == 4
    )


def test_a_location_added_later_is_a_gap_that_a_plain_backfill_fills_alone(
    pipeline_env, db, source, use_locations, capsys
):
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    start = yesterday - timedelta(days=3)
    use_locations(without_sydney)
    backfill(start, yesterday)
    versions = dict(db.execute("select location_id || observed_at::text, xmin::text from raw.hourly_weather"))
    use_locations()
    source.reset_counters()

    assert main(["gaps", "--since", str(start)]) == 1
    assert f"missing:    {start}..{yesterday}\n" in capsys.readouterr().out

    summary = backfill(start, yesterday)

    assert summary.days_planned == 4
    assert source.requests == 1  # Sydney alone, the four days in one request
    assert db.execute("select count(*) from raw.hourly_weather where location_id = 'syd'").fetchone()[0] == 4 * 24
    # The other locations' rows were not rewritten.
    after = dict(db.execute("select location_id || observed_at::text, xmin::text from raw.hourly_weather"))
    assert {key: after[key] for key in versions} == versions
    assert main(["gaps", "--since", str(start)]) == 0
    filled = state_of(db)
    db.execute("drop schema raw, ops, staging, audit, marts cascade")
    backfill(start, yesterday)
    assert state_of(db) == filled  # as if Sydney had been there from the start


def test_renaming_a_location_updates_the_dimension_and_leaves_the_facts(pipeline_env, db, use_locations):
    daily(END)
    facts = state_of(db)[1]
    use_locations(lambda text: text.replace("ams,Amsterdam,", "ams,Amsterdam Centraal,"))

    daily(END)

    assert db.execute("select location_name from marts.dim_locations where location_id = 'ams'").fetchone() == (
        "Amsterdam Centraal",
    )
    assert state_of(db)[1] == facts
