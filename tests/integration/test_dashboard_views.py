"""The dashboard's views in marts (day status, freshness) and the read-only role it connects as."""

import os
from datetime import UTC, date, datetime, time, timedelta

import psycopg
import pytest
from psycopg import sql

from flows.daily import daily_weather
from pipeline.alerts import deadline_at, due_logical_date
from pipeline.dashboard.deploy import build_views
from pipeline.settings import PROJECT_ROOT

DAY = date(2024, 3, 9)
LOCATION_COUNT = 5
READER = "weather_dashboard"
COUNT = sql.SQL("select count(*) from {}")


def run(logical_date=DAY, lookback_days=0):
    """A daily run, then the dashboard's views, which runs leave to `pipeline dashboard deploy`."""
    state = daily_weather(logical_date=logical_date, lookback_days=lookback_days, return_state=True)
    build_views(os.environ["PIPELINE_DATABASE_URL"], PROJECT_ROOT / "dbt_project")
    return state


def freshness(db) -> dict:
    cursor = db.execute("select * from marts.rpt_freshness")
    (row,) = cursor.fetchall()
    return dict(zip([column.name for column in cursor.description], row, strict=True))


def record_ledger(db, day: date, status: str, published: bool) -> None:
    db.execute(
        "insert into ops.load_ledger (source, day, status, row_count, loaded_at, attempted_at, transformed_at)"
        " values ('open-meteo-archive', %(day)s, %(status)s, 120, now(), now(),"
        " case when %(published)s then now() + interval '1 second' end)"
        " on conflict (source, day) do update set status = excluded.status, transformed_at = excluded.transformed_at",
        {"day": day, "status": status, "published": published},
    )


def test_freshness_view_reports_the_published_date_and_a_late_day_by_the_deadline_rule(pipeline_env, db):
    assert run().is_completed()

    view = freshness(db)

    assert view["latest_date"] == DAY
    assert view["location_count"] == LOCATION_COUNT
    assert view["deadline"] == time(7, 0)
    assert view["due_date"] == due_logical_date(datetime.now(UTC), time(7, 0))
    # DAY landed long ago, and nothing since: stale from the deadline of the day after it.
    assert view["is_late"] is True
    assert view["stale_since_utc"] == deadline_at(DAY + timedelta(days=1), time(7, 0)).replace(tzinfo=None)
    assert view["freshness_label"] == f"STALE since {DAY + timedelta(days=2)} 07:00 UTC"


def test_freshness_view_is_fresh_once_the_due_day_is_loaded_and_published(pipeline_env, db):
    assert run().is_completed()
    due = freshness(db)["due_date"]

    record_ledger(db, due, "succeeded", published=False)
    assert freshness(db)["is_late"] is True  # loaded, not published: the late alert still fires

    record_ledger(db, due, "succeeded", published=True)
    view = freshness(db)
    assert (view["is_late"], view["stale_since_utc"]) == (False, None)
    assert view["freshness_label"] == f"Fresh: {due} landed"


def test_day_status_view_names_every_day_up_to_the_due_one(pipeline_env, db):
    assert run().is_completed()
    record_ledger(db, DAY + timedelta(days=1), "failed", published=False)
    record_ledger(db, DAY + timedelta(days=2), "incomplete", published=True)
    record_ledger(db, DAY + timedelta(days=3), "succeeded", published=False)
    due = freshness(db)["due_date"]

    statuses = dict(db.execute("select logical_date, day_status from marts.rpt_day_status").fetchall())

    assert min(statuses) == DAY and max(statuses) == due
    assert len(statuses) == (due - DAY).days + 1
    assert [statuses[DAY + timedelta(days=n)] for n in range(5)] == [
        "landed",
        "failed",
        "incomplete",
        "failed",  # loaded but never published
        "missing",
    ]


def test_dashboard_role_reads_marts_only_and_writes_nothing(pipeline_env, db):
    assert run().is_completed()
    reader = psycopg.conninfo.make_conninfo(pipeline_env, user=READER)

    with psycopg.connect(reader, autocommit=True) as conn:
        for view in ("fct_daily_weather", "dim_locations", "rpt_freshness", "rpt_day_status"):
            conn.execute(COUNT.format(sql.Identifier("marts", view))).fetchone()
        for schema, table in (("raw", "hourly_weather"), ("audit", "fct_daily_weather"), ("ops", "load_ledger")):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(COUNT.format(sql.Identifier(schema, table)))
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("delete from marts.fct_daily_weather")
