import math
from datetime import UTC, date, datetime

from pipeline.backfill import Chunk
from pipeline.extract import VARIABLES
from pipeline.quota import Admission, Limits, Usage, admit, call_weight, chunk_calls, describe, stopped_message
from pipeline.window import Window

NOW = datetime(2024, 3, 10, 14, 25, tzinfo=UTC)
LIMITS = Limits(per_minute=600, per_hour=5_000, per_day=10_000, daily_reserve=1_000)


def test_call_weight_counts_locations_and_each_started_fortnight():
    assert call_weight(1, 1) == 1
    assert call_weight(100, 7) == 100
    assert call_weight(10, 28) == 20
    assert call_weight(1, 365) == 27


def test_call_weight_counts_each_started_ten_variables_of_the_request():
    assert call_weight(1, 1, n_variables=10) == 1
    assert call_weight(1, 1, n_variables=11) == 2
    # Two fortnights × 2.1 tens of variables is 4.2, counted as 5 calls per location.
    assert call_weight(3, 28, n_variables=21) == 3 * 5
    # Every request asks for all of VARIABLES: an 11th doubles the weight of every request.
    assert call_weight(1, 1) == math.ceil(len(VARIABLES) / 10)


def test_chunk_calls_count_each_batch_per_location_and_per_started_14_days():
    two_weeks, three_weeks = Window(date(2024, 1, 1), date(2024, 1, 14)), Window(date(2024, 1, 1), date(2024, 1, 21))

    assert chunk_calls([Chunk(two_weeks), Chunk(three_weeks)], locations=250, per_request=100) == [250, 500]


def test_chunk_calls_count_only_the_locations_a_chunk_fetches():
    fortnight = Window(date(2024, 1, 1), date(2024, 1, 14))

    assert chunk_calls([Chunk(fortnight, ("c",)), Chunk(fortnight)], locations=150, per_request=100) == [1, 150]


def test_admit_takes_every_chunk_that_fits_in_the_hour_and_the_day():
    assert admit([1_000] * 4, Usage(hour=0, day=0), LIMITS, NOW) == Admission(4, 4_000)


def test_admit_stops_at_the_hourly_budget_and_resumes_at_the_next_hour():
    admission = admit([1_000] * 6, Usage(hour=500, day=500), LIMITS, NOW)

    assert admission == Admission(4, 4_000, "hourly", datetime(2024, 3, 10, 15, 0, tzinfo=UTC))


def test_admit_leaves_the_daily_reserve_and_resumes_the_next_utc_day():
    admission = admit([1_000] * 3, Usage(hour=0, day=7_500), LIMITS, NOW)

    assert admission == Admission(1, 1_000, "daily", datetime(2024, 3, 11, 0, 0, tzinfo=UTC))


def test_admit_with_the_budget_already_spent_admits_nothing():
    assert admit([10], Usage(hour=5_000, day=5_000), LIMITS, NOW).chunks == 0


def test_describe_shows_the_plan_against_each_budget_and_where_it_stops():
    text = describe([1_000] * 6, Usage(hour=500, day=500), LIMITS, NOW)

    assert text.splitlines() == [
        "API budget: 6,000 calls planned; this hour 500 used of 5,000; today 500 used of 10,000 "
        "(1,000 kept for daily runs); at 600 calls/min, 10 min at least",
        "only 4 of 6 chunks (4,000 calls) fit in the hourly budget now: the backfill will stop after them; "
        "resume after 2024-03-10 15:00 UTC with the same command",
    ]


def test_stopped_message_says_which_budget_and_when_to_resume():
    admission = Admission(1, 1_000, "daily", datetime(2024, 3, 11, tzinfo=UTC))

    assert stopped_message(admission) == (
        "the API's daily call budget is spent; resume after 2024-03-11 00:00 UTC with the same command "
        "(loaded days are skipped)"
    )
