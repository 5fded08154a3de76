from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest

from pipeline import notify
from pipeline.alerts import Alert, deadline_at, due_logical_date

SEVEN = time(7, 0)


def test_due_logical_date_is_yesterday_once_the_deadline_has_passed():
    assert due_logical_date(datetime(2024, 3, 10, 7, 0, tzinfo=UTC), SEVEN) == date(2024, 3, 9)
    assert due_logical_date(datetime(2024, 3, 10, 23, 59, tzinfo=UTC), SEVEN) == date(2024, 3, 9)


def test_due_logical_date_before_the_deadline_is_the_day_before_yesterday():
    assert due_logical_date(datetime(2024, 3, 10, 6, 59, tzinfo=UTC), SEVEN) == date(2024, 3, 8)


def test_due_logical_date_normalises_to_utc_and_rejects_naive_times():
    assert due_logical_date(datetime(2024, 3, 10, 8, 30, tzinfo=timezone(timedelta(hours=2))), SEVEN) == date(
        2024, 3, 8
    )
    with pytest.raises(ValueError, match="no time zone"):
        due_logical_date(datetime(2024, 3, 10, 8), SEVEN)


def test_deadline_at_is_on_the_day_after_the_logical_date():
    assert deadline_at(date(2024, 2, 29), SEVEN) == datetime(2024, 3, 1, 7, tzinfo=UTC)


def test_alert_message_key_is_new_for_each_claim_of_the_same_day():
    alert = Alert(notify.RUN_FAILED, {}, "daily-weather/daily", date(2024, 3, 9), "failed", "run-1")
    first, again = datetime(2024, 3, 10, 6, 5, tzinfo=UTC), datetime(2024, 3, 12, 6, 5, tzinfo=UTC)

    assert alert.message_key(first) == "daily-weather/daily/2024-03-09/failed/2024-03-10T06:05:00+00:00"
    assert alert.message_key(first) != alert.message_key(again)
