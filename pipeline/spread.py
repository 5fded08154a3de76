"""A backfill spread over the work pool: its chunks as flow runs of the backfill-chunk deployment."""

import itertools
import math
from collections.abc import Iterator, Sequence
from datetime import date, timedelta

from prefect import get_client, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from blocks import Warehouse
from pipeline import ledger
from pipeline.backfill import Chunk
from pipeline.concurrency import ensure_limit_exists, holding_slot
from pipeline.errors import StepFailed
from pipeline.load import DayLoad
from pipeline.tasks import Ingested
from pipeline.window import Window

CHUNK_DEPLOYMENT = "backfill-chunk/backfill-chunk"
# The global concurrency limit that bounds chunk runs in flight, across every backfill and worker.
CHUNK_LIMIT = "weather-backfill-chunks"
# How often a backfill asks the server whether a chunk run has finished.
POLL_SECONDS = 1.0
# A chunk run that crashed (its worker or host lost) is started again this many times.
CRASH_RERUNS = 2


class ChunkRunFailed(Exception):
    """A chunk's flow run ended in a state other than Completed."""

    def __init__(self, chunk: Window, run: FlowRun):
        self.crashed = run.state is not None and run.state.is_crashed()
        state = run.state.name if run.state is not None else "without a state"
        message = (run.state.message or "").strip().splitlines()[0] if run.state and run.state.message else ""
        super().__init__(
            f"chunk {chunk}: flow run {run.name} ({run.id}) is {state}" + (f": {message}" if message else "")
        )


def chunk_parameters(chunk: Window, location_ids: Sequence[str], force: bool, chunk_days: int | None = None) -> dict:
    """The backfill-chunk deployment's parameters for one run (its days loaded `chunk_days` at a time), as JSON."""
    parameters = {
        "first": chunk.first.isoformat(),
        "last": chunk.last.isoformat(),
        "location_ids": list(location_ids),
        "force": force,
    }
    return parameters | ({"chunk_days": chunk_days} if chunk_days else {})


def joined(chunks: Sequence[Chunk]) -> Chunk:
    """Consecutive chunks of the same locations as one."""
    return Chunk(Window(chunks[0].days.first, chunks[-1].days.last), chunks[0].location_ids)


def run_chunks(chunks: Sequence[Chunk], per_run: int, slots: int) -> list[Chunk]:
    """The flow runs a spread backfill starts: its consecutive chunks (adjacent days, the same locations)
    joined, at most `per_run` to a run, in a multiple of `slots` runs of about equal size.

    A run's start-up (the worker's poll, a process, imports) is paid once for its chunks, and
    equal runs keep every slot busy to the end: 27 chunks in 3 slots, 4 per run, are 9 runs of 3.
    """
    if per_run < 1 or slots < 1:
        raise ValueError(f"chunks per run and slots must be >= 1, got {per_run} and {slots}")
    stretches: list[list[Chunk]] = []
    for chunk in chunks:
        last = stretches[-1][-1] if stretches else None
        if last and last.location_ids == chunk.location_ids and last.days.last + timedelta(days=1) == chunk.days.first:
            stretches[-1].append(chunk)
        else:
            stretches.append([chunk])
    needed = sum(math.ceil(len(stretch) / per_run) for stretch in stretches)
    total = min(len(chunks), math.ceil(needed / slots) * slots)
    runs: list[Chunk] = []
    for stretch in stretches:
        count = min(len(stretch), max(math.ceil(len(stretch) / per_run), round(len(stretch) * total / len(chunks))))
        bounds = [round(index * len(stretch) / count) for index in range(count + 1)]
        runs.extend(joined(stretch[start:end]) for start, end in itertools.pairwise(bounds))
    return runs


def landed(chunk: Window, stored: dict[date, tuple[int, str]]) -> list[DayLoad]:
    """Each day of `chunk` as the warehouse holds it; a day the chunk run did not land fails the chunk."""
    if missing := [day for day in chunk.days if day not in stored]:
        raise RuntimeError(
            f"chunk {chunk}: the run completed but the ledger has no load of {', '.join(map(str, missing))}"
        )
    return [DayLoad(day, *stored[day]) for day in chunk.days]


def require_chunk_deployment() -> None:
    """Raise ValueError, saying what a spread backfill needs, unless the server has the backfill-chunk deployment."""
    try:
        with get_client(sync_client=True) as client:
            client.read_deployment_by_name(CHUNK_DEPLOYMENT)
    except ObjectNotFound:
        raise ValueError(
            f"--spread needs the {CHUNK_DEPLOYMENT} deployment on the Prefect server in PREFECT_API_URL"
            " (apply the deployments with `pipeline deploy`) and workers on its pool; it has none"
        ) from None


def ensure_chunk_limit(slots: int) -> str:
    """Create the chunk limit with `slots` if it is missing; an existing one keeps what its operator set."""
    if ensure_limit_exists(CHUNK_LIMIT, slots):
        return f"{CHUNK_LIMIT}: created, {slots} chunk runs at once"
    return f"{CHUNK_LIMIT}: present"


def chunk_slots() -> int:
    """How many chunk runs the chunk limit lets run at once, as its operator set it."""
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(CHUNK_LIMIT).limit


def rerun_if_crashed(task, task_run, state) -> bool:
    """Start a chunk again only when its run crashed (a lost worker): a failed load would fail again."""
    try:
        state.result()
    except ChunkRunFailed as failed:
        return failed.crashed
    except Exception:
        return False
    return False


@task(
    name="run-backfill-chunk",
    task_run_name="chunk-{chunk}",
    cache_policy=NO_CACHE,
    retries=CRASH_RERUNS,
    retry_condition_fn=rerun_if_crashed,
)
def run_backfill_chunk(
    warehouse: Warehouse, chunk: Window, location_ids: tuple[str, ...], force: bool, chunk_days: int | None = None
) -> Ingested:
    """Run one chunk (loaded `chunk_days` at a time) on whichever worker of the pool takes it, holding a slot of
    the chunk limit meanwhile."""
    with holding_slot(CHUNK_LIMIT):
        try:
            run = run_deployment(
                CHUNK_DEPLOYMENT,
                parameters=chunk_parameters(chunk, location_ids, force, chunk_days),
                poll_interval=POLL_SECONDS,
            )
        except ObjectNotFound:
            raise RuntimeError(
                f"a spread backfill needs the {CHUNK_DEPLOYMENT} deployment (pipeline deploy) on the server"
                " in PREFECT_API_URL, and workers on its pool"
            ) from None
    if run.state is None or not run.state.is_completed():
        raise ChunkRunFailed(chunk, run)
    with warehouse.connect() as conn:
        stored = ledger.stored_days(conn, chunk, list(location_ids))
    return Ingested(landed(chunk, stored), 0.0, 0.0)


def spread_chunks(
    warehouse: Warehouse,
    location_ids: Sequence[str],
    chunks: Sequence[Chunk],
    force: bool = False,
    chunk_days: int | None = None,
    per_run: int = 1,
) -> Iterator[Ingested | StepFailed]:
    """Run the chunks as flow runs of the backfill-chunk deployment, up to `per_run` consecutive ones in each
    (each loaded `chunk_days` at a time); yields each run's days as they land, a failed run as StepFailed."""
    slots = chunk_slots()
    # With one chunk a run, the runs are the chunks themselves. A limit of 0 slots fails here, saying so.
    runs = run_chunks(chunks, per_run, slots)
    # No more runs waiting here than the limit has slots: a task denied a slot is told by the server
    # to ask again after the slots' average occupancy, capped at 30 s, so a queue at the limit left
    # every slot idle for up to that long after each run. Here the next run starts as a slot frees;
    # the limit still bounds the runs of every backfill and worker together.
    with ThreadPoolTaskRunner(max_workers=slots) as runner:
        futures = {
            runner.submit(
                run_backfill_chunk,
                {
                    "warehouse": warehouse,
                    "chunk": run.days,
                    "location_ids": run.location_ids or tuple(location_ids),
                    "force": force,
                    "chunk_days": chunk_days,
                },
            ): run.days
            for run in runs
        }
        for future in as_completed(list(futures)):
            try:
                yield future.result()
            except Exception as exc:
                yield exc if isinstance(exc, StepFailed) else StepFailed("load", futures[future], exc)
