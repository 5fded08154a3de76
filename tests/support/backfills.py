"""What the spread-backfill tests read back: a backfill's chunk runs, and a window's per-day state."""

from datetime import date
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from prefect.client.schemas.objects import FlowRun

from pipeline import warehouse as wh


def chunk_runs(parent: UUID) -> list[FlowRun]:
    """The flow runs a spread backfill started for its chunks."""
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent]))
        )


def window_state(conn, first: date, last: date) -> tuple[dict, dict, dict]:
    """Per-day raw and mart checksums of `first`..`last`, and which flow run loaded each day."""
    in_window = lambda checksums: {day: value for day, value in checksums.items() if first <= day <= last}  # noqa: E731
    loaded_by = dict(
        conn.execute(
            "select day, flow_run_id from ops.load_ledger where day between %s and %s", [first, last]
        ).fetchall()
    )
    return in_window(wh.day_checksums(conn, "raw")), in_window(wh.day_checksums(conn, "mart")), loaded_by
