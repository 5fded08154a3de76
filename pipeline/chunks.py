"""A backfill's chunks loaded: in this run's threads or spread over the work pool, counted as they land."""

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from prefect import get_run_logger

from blocks import Resources
from pipeline.backfill import Chunk
from pipeline.errors import StepFailed
from pipeline.ledger import DayStatus
from pipeline.load import DayLoad
from pipeline.locations import Location
from pipeline.progress import BackfillProgress
from pipeline.spread import ensure_chunk_limit, spread_chunks
from pipeline.summary import RunSummary, TestCounts
from pipeline.tasks import ingest_chunks
from pipeline.transform import DbtOutcome
from pipeline.window import Window


@dataclass(frozen=True)
class Landed:
    """What a backfill's chunks wrote, and how long they took."""

    days: int
    rows: int
    # Days whose rows differ from what the ledger held before (a revised archive, a repaired day).
    checksums_changed: int
    seconds: float

    def summary(
        self, planned: RunSummary, tests: DbtOutcome | None, dbt_seconds: float, stopped: str | None
    ) -> RunSummary:
        """The backfill's `planned` summary with what it loaded and built; `stopped`: why chunks were left out."""
        return planned.model_copy(
            update={
                "seconds": {"ingest": round(self.seconds, 3), "dbt": round(dbt_seconds, 3)},
                "rows_loaded": self.rows,
                "days_loaded": self.days,
                "stopped": stopped,
                "checksums_changed": self.checksums_changed,
                "dbt_tests": TestCounts(counts=tests.counts) if tests else None,
            }
        )


def checksums_changed(ledger: Mapping[date, DayStatus], loads: Iterable[DayLoad]) -> int:
    """How many of `loads` replaced a day the ledger held with different content."""
    return sum(1 for day in loads if day.day in ledger and ledger[day.day].checksum != day.checksum)


def load_chunks(
    resources: Resources,
    locations: tuple[Location, ...],
    window: Window,
    chunks: Sequence[Chunk],
    ledger: Mapping[date, DayStatus],
    flow_run_id: str | None,
    force: bool = False,
    spread: bool = False,
) -> Landed:
    """Load every chunk, at most `backfill_workers` at once, showing progress as each lands.

    With `spread` each chunk is a flow run of the backfill-chunk deployment. A failed chunk
    does not stop the others; once they have landed, the backfill fails naming how many failed.
    """
    days = sum(len(chunk.days) for chunk in chunks)
    failures: list[StepFailed] = []
    changed = 0
    with BackfillProgress(days) as progress:
        started = time.perf_counter()
        if spread:
            get_run_logger().info(ensure_chunk_limit(resources.settings.backfill_workers))
            ids = [location.location_id for location in locations]
            settings = resources.settings
            outcomes = spread_chunks(
                resources.warehouse, ids, chunks, force, settings.backfill_chunk_days, settings.spread_chunks_per_run
            )
        else:
            outcomes = ingest_chunks(resources, locations, chunks, flow_run_id, force)
        for outcome in outcomes:
            if isinstance(outcome, StepFailed):
                failures.append(outcome)
                continue
            changed += checksums_changed(ledger, outcome.loads)
            progress.advance(len(outcome.loads), outcome.rows)
    if failures:
        raise StepFailed(
            failures[0].step,
            window,
            RuntimeError(f"{len(failures)} of {len(chunks)} chunks failed, first: {failures[0]}"),
        )
    return Landed(days, progress.rows, changed, time.perf_counter() - started)
