from datetime import date, timedelta

import pytest

from pipeline.gaps import GapReport, backfill_command, expected_window
from pipeline.window import Window, requested_range

D = date(2024, 3, 1)


def days(*offsets: int) -> list[date]:
    return [D + timedelta(days=offset) for offset in offsets]


def test_expected_window_defaults_to_the_30_days_before_today():
    assert expected_window(None, date(2024, 3, 31)) == Window(date(2024, 3, 1), date(2024, 3, 30))


def test_expected_window_starts_where_asked():
    assert expected_window(D, date(2024, 3, 5)) == Window(D, date(2024, 3, 4))


def test_gap_report_suggests_one_backfill_per_run_of_consecutive_days_with_the_mode_it_needs():
    report = GapReport(Window(D, D + timedelta(days=9)), 3, missing=days(0, 1), failed=days(2), incomplete=days(5, 8))

    assert report.backfills() == [
        "pipeline backfill --start 2024-03-01 --end 2024-03-03 --reprocess failed",
        "pipeline backfill --start 2024-03-06 --end 2024-03-06 --reprocess incomplete",
        "pipeline backfill --start 2024-03-09 --end 2024-03-09 --reprocess incomplete",
    ]


def test_gap_report_of_missing_days_only_suggests_the_default_mode_and_is_true():
    report = GapReport(Window(D, D), 1, missing=days(0), failed=[], incomplete=[])

    assert report.backfills() == ["pipeline backfill --start 2024-03-01 --end 2024-03-01"]
    assert report


def test_gap_report_without_gaps_is_false_and_suggests_nothing():
    report = GapReport(Window(D, D), 1, [], [], [])

    assert not report
    assert report.backfills() == []


def test_backfill_command_names_the_mode_only_when_given():
    assert (
        backfill_command(Window(D, D), "all") == "pipeline backfill --start 2024-03-01 --end 2024-03-01 --reprocess all"
    )


def test_requested_range_refuses_an_end_before_the_start():
    with pytest.raises(ValueError, match=r"^--end 2024-02-29 is before --start 2024-03-01$"):
        requested_range(D, date(2024, 2, 29), 400)


def test_requested_range_longer_than_the_maximum_needs_confirmation():
    with pytest.raises(
        ValueError, match=r"is 3 days, more than PIPELINE_BACKFILL_MAX_DAYS=2: pass --yes if you mean it"
    ):
        requested_range(D, D + timedelta(days=2), 2)

    assert requested_range(D, D + timedelta(days=2), 2, confirmed=True) == Window(D, D + timedelta(days=2))
