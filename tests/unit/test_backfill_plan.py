from datetime import date, timedelta

import pytest

from pipeline.backfill import Chunk, gaps, plan_backfill, revisit_window
from pipeline.ledger import DayStatus
from pipeline.locations import Location
from pipeline.progress import progress_line
from pipeline.quota import chunk_calls
from pipeline.window import Window, consecutive_runs

JAN = Window(date(2024, 1, 1), date(2024, 1, 31))
DONE = DayStatus("succeeded", loaded=True, transformed=True)
FAILED_BEFORE_ANY_LOAD = DayStatus("failed", loaded=False, transformed=False)
FAILED_AFTER_A_LOAD = DayStatus("failed", loaded=True, transformed=True)
NOT_TRANSFORMED = DayStatus("succeeded", loaded=True, transformed=False)


def day(n: int) -> date:
    return date(2024, 1, n)


def ledger_with(**entries) -> dict:
    ledger = {d: DONE for d in JAN.days}
    for key, status in entries.items():
        ledger[day(int(key.removeprefix("d")))] = status
    return ledger


def test_plan_backfill_missing_loads_only_days_never_loaded():
    ledger = ledger_with(d3=FAILED_BEFORE_ANY_LOAD, d10=FAILED_AFTER_A_LOAD)
    del ledger[day(4)], ledger[day(5)]

    plan = plan_backfill(JAN, ledger, "missing", chunk_days=14)

    assert plan.load_days == (day(3), day(4), day(5))
    assert plan.chunks == (Chunk(Window(day(3), day(5))),)
    assert plan.reasons[day(4)] == "never loaded"
    assert plan.dbt_window == Window(day(3), day(5))


def test_plan_backfill_failed_adds_days_whose_last_attempt_failed():
    plan = plan_backfill(JAN, ledger_with(d3=FAILED_BEFORE_ANY_LOAD, d10=FAILED_AFTER_A_LOAD), "failed", 14)

    assert plan.load_days == (day(3), day(10))
    assert plan.reasons[day(10)] == "last attempt failed"
    assert plan.chunks == (Chunk(Window(day(3), day(3))), Chunk(Window(day(10), day(10))))


def test_plan_backfill_all_reloads_everything_in_chunks():
    plan = plan_backfill(JAN, ledger_with(), "all", chunk_days=14)

    assert plan.load_days == tuple(JAN.days)
    assert [chunk.days for chunk in plan.chunks] == [
        Window(day(1), day(14)),
        Window(day(15), day(28)),
        Window(day(29), day(31)),
    ]


def test_plan_backfill_of_a_finished_range_does_nothing():
    plan = plan_backfill(JAN, ledger_with(), "missing", 14)

    assert plan.load_days == plan.transform_days == plan.chunks == ()
    assert plan.dbt_window is None
    assert plan.requests(1000, 100) == sum(chunk_calls(plan.chunks, 1000, 100)) == plan.expected_rows(1000) == 0


def test_plan_backfill_sends_loaded_but_untransformed_days_to_dbt_without_downloading_them():
    plan = plan_backfill(JAN, ledger_with(d20=NOT_TRANSFORMED, d21=NOT_TRANSFORMED), "missing", 14)

    assert plan.load_days == ()
    assert plan.transform_days == (day(20), day(21))
    assert plan.dbt_window == Window(day(20), day(21))
    assert plan.reasons[day(20)] == "loaded, not yet transformed"


def test_plan_backfill_counts_requests_calls_and_rows():
    plan = plan_backfill(Window(date(2023, 1, 1), date(2023, 12, 31)), {}, "missing", chunk_days=14)

    assert len(plan.chunks) == 27  # 26 fortnights and one day
    assert plan.requests(locations=1000, per_request=100) == 270
    assert sum(chunk_calls(plan.chunks, locations=1000, per_request=100)) == 27 * 1000
    assert sum(chunk_calls(plan.chunks, locations=150, per_request=100)) == 27 * 150
    assert plan.expected_rows(1000) == 365 * 24 * 1000
    assert "365 of 365 days to load in 27 chunks (365 never loaded); 270 requests, 27000 API calls" in plan.describe(
        1000, 100, 27_000
    )


def test_plan_backfill_rejects_an_unknown_mode():
    modes = "missing, failed, incomplete, all, transform"
    with pytest.raises(ValueError, match=f"reprocess must be one of {modes}, got 'some'"):
        plan_backfill(JAN, {}, "some", 14)


def test_consecutive_runs_groups_sorted_dates():
    days = [day(5), day(1), day(2), day(3), day(7)]
    assert consecutive_runs(days) == [Window(day(1), day(3)), Window(day(5), day(5)), Window(day(7), day(7))]
    assert consecutive_runs([]) == []


def test_gaps_lists_unloaded_and_failed_days():
    ledger = ledger_with(d2=FAILED_BEFORE_ANY_LOAD, d9=FAILED_AFTER_A_LOAD)
    del ledger[day(31)]

    missing, failed, incomplete = gaps(JAN, ledger)

    assert missing == [day(2), day(31)]
    assert failed == [day(2), day(9)]
    assert incomplete == []


def test_gaps_lists_days_without_an_active_location_and_incomplete_days():
    ledger = {d: held("a", "b") for d in JAN.days}
    ledger[day(5)] = held("a")
    ledger[day(6)] = DayStatus("incomplete", True, True, locations=frozenset({"a", "b"}))
    ledger[day(7)] = DONE  # loaded before the ledger kept locations: it held them all

    missing, failed, incomplete = gaps(JAN, ledger, active=("a", "b"))

    assert missing == [day(5)]
    assert failed == []
    assert incomplete == [day(6)]
    assert gaps(JAN, ledger, active=("a",)).missing == []  # a retired location is not missed


def held(*ids: str) -> DayStatus:
    return DayStatus("succeeded", loaded=True, transformed=True, locations=frozenset(ids))


def test_plan_backfill_missing_fetches_only_a_location_added_after_the_days_were_loaded():
    ledger = {d: held("a", "b") for d in JAN.days}
    ledger[day(30)] = held("a", "b", "c")  # the day c joined
    del ledger[day(31)]

    plan = plan_backfill(JAN, ledger, "missing", chunk_days=14, active=("a", "b", "c"))

    assert plan.load_days == tuple(JAN.days[:29]) + (day(31),)
    assert plan.chunks == (
        Chunk(Window(day(1), day(14)), ("c",)),
        Chunk(Window(day(15), day(28)), ("c",)),
        Chunk(Window(day(29), day(29)), ("c",)),
        Chunk(Window(day(31), day(31))),
    )
    assert plan.reasons[day(3)] == "locations missing"
    assert plan.requests(locations=3, per_request=2) == 3 + 2
    assert plan.expected_rows(3) == 29 * 24 * 1 + 24 * 3


def test_a_chunk_fetches_its_own_locations_in_file_order_or_every_one():
    locations = tuple(Location(location_id, "", 0.0, 0.0) for location_id in ("a", "b", "c"))

    assert Chunk(JAN, ("c", "a")).fetched(locations) == (locations[0], locations[2])
    assert Chunk(JAN).fetched(locations) == locations


def test_plan_backfill_ignores_a_retired_location_the_days_still_hold():
    ledger = {d: held("a", "b", "old") for d in JAN.days}

    plan = plan_backfill(JAN, ledger, "missing", chunk_days=14, active=("a", "b"))

    assert plan.load_days == plan.chunks == ()


def test_plan_backfill_incomplete_reloads_days_with_missing_values():
    incomplete = DayStatus("incomplete", loaded=True, transformed=True)
    plan = plan_backfill(JAN, ledger_with(d4=incomplete, d5=incomplete), "incomplete", chunk_days=14)

    assert plan.load_days == (day(4), day(5))
    assert plan.reasons[day(4)] == "incomplete"
    assert plan_backfill(JAN, ledger_with(d4=incomplete), "missing", 14).load_days == ()


def test_plan_backfill_transform_rebuilds_every_day_without_downloading():
    plan = plan_backfill(JAN, ledger_with(), "transform", chunk_days=14)

    assert plan.load_days == plan.chunks == ()
    assert plan.transform_days == tuple(JAN.days)
    assert plan.dbt_window == JAN
    assert chunk_calls(plan.chunks, 1000, 100) == []


def test_progress_line_reports_rate_and_eta():
    assert progress_line(10, 40, 240_000, elapsed=2.0) == (
        "backfill 10/40 days | 240,000 rows | 120,000 rows/s | ETA 0:00:06"
    )
    assert progress_line(0, 40, 0, 0.0).endswith("ETA ?")


def test_chunks_cover_every_planned_day_once():
    ledger = {d: DONE for d in JAN.days if d.day % 3}
    plan = plan_backfill(JAN, ledger, "missing", chunk_days=2)
    covered = [d for c in plan.chunks for d in c.days.days]
    assert covered == list(plan.load_days) == [d for d in JAN.days if d.day % 3 == 0]
    assert all(c.days.last - c.days.first <= timedelta(days=1) for c in plan.chunks)


def test_revisit_window_reaches_back_to_the_earliest_incomplete_day_inside_the_horizon():
    window = Window(day(20), day(25))
    incomplete = DayStatus("incomplete", loaded=True, transformed=True)
    horizon = {day(15): DONE, day(16): incomplete, day(17): DONE, day(18): incomplete}

    assert revisit_window(window, horizon) == Window(day(16), day(25))
    assert revisit_window(window, {day(15): DONE}) == window
    assert revisit_window(window, {}) == window
