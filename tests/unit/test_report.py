from datetime import UTC, date, datetime, timedelta, timezone
from uuid import uuid4

from prefect.client.schemas.objects import FlowRun

from flows.report import run_logical_date


def run(expected: datetime, **parameters) -> FlowRun:
    return FlowRun(flow_id=uuid4(), expected_start_time=expected, parameters=parameters)


def test_a_crashed_runs_logical_date_is_the_utc_day_before_it_was_expected():
    # 01:00 in UTC+2 on the 10th is 23:00 UTC on the 9th: its logical date is the 8th, as the flow's own.
    assert run_logical_date(run(datetime(2024, 3, 10, 1, tzinfo=timezone(timedelta(hours=2))))) == date(2024, 3, 8)


def test_a_crashed_runs_logical_date_parameter_wins():
    expected = datetime(2024, 3, 10, 6, tzinfo=UTC)
    assert run_logical_date(run(expected, logical_date="2024-01-31")) == date(2024, 1, 31)
