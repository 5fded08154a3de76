from datetime import UTC, date, datetime, timedelta, timezone
from uuid import uuid4

from prefect.client.schemas.objects import FlowRun

from pipeline import notify
from pipeline.lookups import KnownRun
from pipeline.runs import ended_run_alert


def run(expected: datetime, **parameters) -> FlowRun:
    return FlowRun(flow_id=uuid4(), expected_start_time=expected, parameters=parameters)


def test_a_crashed_runs_logical_date_is_the_utc_day_before_it_was_expected():
    # 01:00 in UTC+2 on the 10th is 23:00 UTC on the 9th: its logical date is the 8th, as the flow's own.
    crashed = KnownRun(run(datetime(2024, 3, 10, 1, tzinfo=timezone(timedelta(hours=2)))), "daily-weather", "daily")
    assert crashed.logical_date == date(2024, 3, 8)


def test_a_crashed_runs_logical_date_parameter_wins():
    expected = datetime(2024, 3, 10, 6, tzinfo=UTC)
    assert KnownRun(run(expected, logical_date="2024-01-31"), "daily-weather", None).logical_date == date(2024, 1, 31)


def test_ended_run_alert_is_a_failure_of_the_day_keyed_by_flow_and_deployment():
    crashed = KnownRun(run(datetime(2024, 3, 10, 6, tzinfo=UTC)), "daily-weather", None)

    alert = ended_run_alert(crashed, "crashed")

    assert (alert.event_type, alert.deployment, alert.logical_date, alert.kind) == (
        notify.RUN_FAILED,
        "daily-weather/local",
        date(2024, 3, 9),
        "crashed",
    )
    assert alert.data["failed_step"] == "crashed" and alert.data["logical_date"] == "2024-03-09"


def test_a_chunk_runs_crash_alert_is_scoped_to_the_backfill_that_started_it():
    expected = datetime(2024, 3, 10, 6, tzinfo=UTC)
    backfill, later_backfill = uuid4(), uuid4()
    chunk_runs = [
        KnownRun(run(expected), "backfill-chunk", "backfill-chunk", parent)
        for parent in (backfill, backfill, later_backfill)
    ]

    scopes = [ended_run_alert(chunk_run, "crashed").deployment for chunk_run in chunk_runs]

    assert scopes == [
        f"backfill-chunk/backfill-chunk/{backfill}",
        f"backfill-chunk/backfill-chunk/{backfill}",
        f"backfill-chunk/backfill-chunk/{later_backfill}",
    ]
