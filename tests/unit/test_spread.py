from datetime import date

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.states import Completed, Crashed, Failed

from pipeline.backfill import Chunk
from pipeline.load import DayLoad
from pipeline.spread import ChunkRunFailed, chunk_parameters, landed, rerun_if_crashed, run_chunks
from pipeline.window import Window, chunk

CHUNK = Window(date(2024, 2, 28), date(2024, 3, 1))


def test_chunk_parameters_name_the_days_and_every_location_as_json():
    assert chunk_parameters(CHUNK, ("ams", "rey"), force=True) == {
        "first": "2024-02-28",
        "last": "2024-03-01",
        "location_ids": ["ams", "rey"],
        "force": True,
    }


def test_chunk_parameters_carry_the_chunk_size_of_a_run_of_several_chunks():
    assert chunk_parameters(CHUNK, ("ams",), force=False, chunk_days=28)["chunk_days"] == 28


TWO_YEARS = [Chunk(days) for days in chunk(Window(date(2022, 1, 1), date(2023, 12, 31)), 28)]


def _sizes(runs: list[Chunk]) -> list[int]:
    return [len(run.days) // 28 + (len(run.days) % 28 > 0) for run in runs]


def test_run_chunks_join_consecutive_chunks_into_as_many_equal_runs_as_keep_every_slot_busy():
    # 27 chunks, at most 4 a run: 7 runs would leave two of three slots idle at the end; 9 runs of 3 do not.
    runs = run_chunks(TWO_YEARS, per_run=4, slots=3)

    assert _sizes(runs) == [3] * 9
    assert [run.days.first for run in runs] == [TWO_YEARS[index].days.first for index in range(0, 27, 3)]
    assert runs[-1].days.last == date(2023, 12, 31)
    assert sum(len(run.days) for run in runs) == 730


def test_run_chunks_keep_each_run_within_the_most_chunks_a_run_may_take():
    runs = run_chunks(TWO_YEARS, per_run=5, slots=3)

    assert len(runs) == 6 and max(_sizes(runs)) <= 5
    assert all(a.days.last.toordinal() + 1 == b.days.first.toordinal() for a, b in zip(runs, runs[1:], strict=False))


def test_run_chunks_start_one_run_a_chunk_with_one_chunk_a_run():
    assert run_chunks(TWO_YEARS, per_run=1, slots=3) == TWO_YEARS


def test_run_chunks_never_join_chunks_of_other_locations_or_with_a_gap_between_them():
    chunks = [
        Chunk(Window(date(2024, 1, 1), date(2024, 1, 2))),
        Chunk(Window(date(2024, 1, 3), date(2024, 1, 4)), ("ams",)),  # a location added later
        *(Chunk(days) for days in chunk(Window(date(2024, 1, 8), date(2024, 1, 15)), 2)),  # after a gap
    ]

    # Six chunks for three runs of two: the first two cannot be joined, the four after the gap can.
    assert run_chunks(chunks, per_run=4, slots=1) == [
        chunks[0],
        chunks[1],
        Chunk(Window(date(2024, 1, 8), date(2024, 1, 11))),
        Chunk(Window(date(2024, 1, 12), date(2024, 1, 15))),
    ]


def test_run_chunks_refuse_a_run_or_slot_count_below_one():
    with pytest.raises(ValueError, match="must be >= 1"):
        run_chunks(TWO_YEARS, per_run=0, slots=3)


def test_landed_lists_each_day_of_the_chunk_as_stored():
    stored = {day: (24, f"sum-{day.day}") for day in CHUNK.days}

    assert landed(CHUNK, stored) == [DayLoad(day, 24, f"sum-{day.day}") for day in CHUNK.days]


def test_landed_fails_naming_the_days_a_completed_chunk_run_did_not_load():
    stored = {date(2024, 2, 28): (24, "a")}

    with pytest.raises(RuntimeError, match="no load of 2024-02-29, 2024-03-01"):
        landed(CHUNK, stored)


def _run(state) -> FlowRun:
    return FlowRun(name="calm-otter", flow_id="00000000-0000-0000-0000-000000000000", state=state)


def test_chunk_run_failed_names_the_chunk_the_run_and_its_state():
    failed = ChunkRunFailed(CHUNK, _run(Failed(message="load failed for 2024-02-28..2024-03-01: boom\nTraceback")))

    assert str(failed).startswith("chunk 2024-02-28..2024-03-01: flow run calm-otter (")
    assert str(failed).endswith(") is Failed: load failed for 2024-02-28..2024-03-01: boom")
    assert not failed.crashed


def test_a_chunk_is_started_again_only_when_its_run_crashed():
    crashed = Failed(data=ChunkRunFailed(CHUNK, _run(Crashed(message="worker lost"))))
    failed = Failed(data=ChunkRunFailed(CHUNK, _run(Failed(message="400 from the API"))))
    other = Failed(data=RuntimeError("the warehouse is down"))

    assert rerun_if_crashed(None, None, crashed) is True
    assert rerun_if_crashed(None, None, failed) is False
    assert rerun_if_crashed(None, None, other) is False
    assert rerun_if_crashed(None, None, Completed()) is False
