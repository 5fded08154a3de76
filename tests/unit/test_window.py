from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from pipeline.window import (
    Window,
    check_not_future,
    chunk,
    consecutive_runs,
    daily_window,
    logical_date_for,
    parse_day,
)


def test_logical_date_for_is_the_day_before_the_scheduled_start():
    assert logical_date_for(datetime(2024, 3, 10, 6, 0, tzinfo=UTC)) == date(2024, 3, 9)


def test_logical_date_for_ignores_how_late_in_the_day_it_was_scheduled():
    assert logical_date_for(datetime(2024, 3, 10, 23, 59, tzinfo=UTC)) == date(2024, 3, 9)
    assert logical_date_for(datetime(2024, 3, 10, 0, 0, tzinfo=UTC)) == date(2024, 3, 9)


def test_logical_date_for_leap_day():
    assert logical_date_for(datetime(2024, 3, 1, 6, tzinfo=UTC)) == date(2024, 2, 29)
    assert logical_date_for(datetime(2023, 3, 1, 6, tzinfo=UTC)) == date(2023, 2, 28)


def test_logical_date_for_year_boundary():
    assert logical_date_for(datetime(2025, 1, 1, 6, tzinfo=UTC)) == date(2024, 12, 31)


def test_logical_date_for_normalises_other_time_zones_to_utc():
    # 01:30 on the 10th in UTC+2 is 23:30 on the 9th in UTC.
    scheduled = datetime(2024, 3, 10, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert logical_date_for(scheduled) == date(2024, 3, 8)


def test_logical_date_for_rejects_naive_datetimes():
    with pytest.raises(ValueError, match="no time zone"):
        logical_date_for(datetime(2024, 3, 10, 6, 0))


def test_daily_window_covers_lookback_and_logical_date():
    window = daily_window(date(2024, 3, 9), lookback_days=5)
    assert window == Window(date(2024, 3, 4), date(2024, 3, 9))
    assert len(window) == 6
    assert window.start == datetime(2024, 3, 4, tzinfo=UTC)
    assert window.end == datetime(2024, 3, 10, tzinfo=UTC)


def test_daily_window_without_lookback_is_one_day():
    assert daily_window(date(2024, 2, 29), 0).days == [date(2024, 2, 29)]


def test_daily_window_rejects_negative_lookback():
    with pytest.raises(ValueError, match="lookback_days"):
        daily_window(date(2024, 3, 9), -1)


def test_window_rejects_end_before_start():
    with pytest.raises(ValueError, match="before it starts"):
        Window(date(2024, 3, 9), date(2024, 3, 8))


@pytest.mark.parametrize("value", ["2024-02-30", "2024-13-01", "", "20240309", "2024-3-9", "yesterday", "2024-W10-1"])
def test_parse_day_rejects_anything_but_a_real_yyyy_mm_dd(value):
    with pytest.raises(ValueError, match="expected YYYY-MM-DD") as info:
        parse_day(value, "--date")
    assert "--date" in str(info.value)


def test_check_not_future_rejects_today_and_later():
    today = date(2024, 3, 10)
    assert check_not_future(date(2024, 3, 9), today) == date(2024, 3, 9)
    with pytest.raises(ValueError, match="not in the past"):
        check_not_future(today, today)


def test_chunk_splits_into_consecutive_windows():
    windows = chunk(Window(date(2024, 1, 1), date(2024, 1, 10)), 4)
    assert windows == [
        Window(date(2024, 1, 1), date(2024, 1, 4)),
        Window(date(2024, 1, 5), date(2024, 1, 8)),
        Window(date(2024, 1, 9), date(2024, 1, 10)),
    ]


def test_consecutive_runs_with_a_key_split_where_the_key_changes():
    days = [date(2024, 3, d) for d in (1, 2, 3, 4, 6)]
    subsets = {date(2024, 3, 3): ("ams",), date(2024, 3, 4): ("ams",)}

    runs = consecutive_runs(days, key=subsets.get)

    assert [(run.first.day, run.last.day) for run in runs] == [(1, 2), (3, 4), (6, 6)]
