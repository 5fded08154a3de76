from datetime import date

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.states import Completed, Crashed, Failed

from pipeline.load import DayLoad
from pipeline.spread import ChunkRunFailed, chunk_parameters, landed, rerun_if_crashed
from pipeline.window import Window

CHUNK = Window(date(2024, 2, 28), date(2024, 3, 1))


def test_chunk_parameters_name_the_days_and_every_location_as_json():
    assert chunk_parameters(CHUNK, ("ams", "rey"), force=True) == {
        "first": "2024-02-28",
        "last": "2024-03-01",
        "location_ids": ["ams", "rey"],
        "force": True,
    }


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
