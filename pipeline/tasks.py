"""Prefect tasks: the pipeline's steps, each a thin wrapper over a role module."""

import time
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

import psycopg
from prefect import Task, get_run_logger, runtime, task
from prefect.cache_policies import INPUTS, NO_CACHE, RUN_ID, TASK_SOURCE
from prefect.futures import as_completed
from prefect.settings import PREFECT_LOGGING_LEVEL
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff
from prefect.utilities.annotations import quote

from blocks import Resources, SourceApi, Warehouse
from pipeline import assets, extract, ledger, load, quota, transform
from pipeline.backfill import Chunk
from pipeline.concurrency import RATE_LIMIT_DECAY_PER_SECOND, RATE_LIMIT_SLOTS, ensure_limit_exists, take_rate_limit
from pipeline.errors import StepFailed, step
from pipeline.locations import Location, read_locations
from pipeline.settings import Settings
from pipeline.warehouse import LockWaitExpired, migrate, session_lock
from pipeline.window import Window

# Held by the run transforming the warehouse (pg advisory lock on its hash).
TRANSFORM_LOCK = "weather-pipeline dbt"


class Ingested(NamedTuple):
    """What one window's ingest wrote, and where its time went."""

    loads: list[load.DayLoad]
    extract_seconds: float
    load_seconds: float

    @property
    def rows(self) -> int:
        return sum(day.row_count for day in self.loads)


def is_transient(task, task_run, state) -> bool:
    """Retry only what can succeed later: timeouts, 5xx, 429 per-minute."""
    try:
        state.result()
    except extract.TransientSourceError:
        return True
    except Exception:
        return False
    return False


@task(
    name="fetch-observations",
    retry_condition_fn=is_transient,
    retry_jitter_factor=0.5,
    # A flow retry reuses what the first attempt downloaded; a new run fetches afresh,
    # since the archive revises recent days. Where the calls are counted is no part of the key.
    cache_policy=(INPUTS - "warehouse" - "flow_run_id") + TASK_SOURCE + RUN_ID,
    cache_expiration=timedelta(days=1),
    persist_result=True,
)
def fetch_observations(
    source: SourceApi,
    locations: tuple[Location, ...],
    window: Window,
    rate_limit_timeout: float | None = None,
    warehouse: Warehouse | None = None,
    flow_run_id: str | None = None,
) -> extract.Observations:
    """Download one request's worth of observations (many locations, a range of days).

    Args:
        warehouse: where the call is counted against the API's hour and day (`ops.api_calls`).
    """
    rate_limit_name = source.rate_limit
    if rate_limit_name:  # the public API: every attempt, a retry too, is a call it counts
        weight = quota.call_weight(len(locations), len(window))
        try:
            # strict: a limit missing here (ingest_window creates it) must not mean unpaced calls.
            take_rate_limit(rate_limit_name, weight, rate_limit_timeout)
        except TimeoutError:  # not transient: a limit this busy will not free up in a retry's delay
            raise TimeoutError(
                f"waited {rate_limit_timeout:g} s for {weight} slots of the rate limit {rate_limit_name!r}"
            ) from None
        if warehouse is not None:
            with warehouse.connect() as conn:
                quota.record(conn, weight, flow_run_id)
    with source.client() as client:
        return extract.fetch(client, locations, window)


def fetcher(settings: Settings, cache: bool = True):
    """`fetch_observations` with this run's retry settings."""
    options = {
        "retries": settings.fetch_retries,
        "retry_delay_seconds": exponential_backoff(settings.fetch_retry_base_seconds),
    }
    if not cache:
        options |= {"cache_policy": NO_CACHE, "persist_result": False}
    return fetch_observations.with_options(**options)


@task(name="prepare-warehouse", cache_policy=NO_CACHE)
def prepare_warehouse(warehouse: Warehouse, locations_file: Path, emit_assets: bool = False) -> tuple[Location, ...]:
    """Apply pending migrations and merge the locations file into raw.locations, then an asset materialized from
    that file (`emit_assets`); returns the locations."""
    locations = read_locations(locations_file)
    with warehouse.connect() as conn:
        migrate(conn)
        count = load.replace_locations(conn, locations)
    if emit_assets:
        assets.emit([assets.raw_locations(warehouse.database, locations_file, count)])
    return locations


@task(name="load-observations", cache_policy=NO_CACHE)
def load_observations(
    warehouse: Warehouse,
    window: Window,
    locations: tuple[Location, ...],
    batches: Sequence[extract.Observations],
    flow_run_id: str | None,
    force: bool = False,
    source_url: str | None = None,
) -> list[load.DayLoad]:
    """Replace the window's rows and ledger entries in one transaction; raw.hourly_weather is then an asset
    materialized from the source API at `source_url`."""
    with warehouse.connect() as conn:
        try:
            loads = load.replace_window(conn, window, locations, batches, flow_run_id, force=force)
        except psycopg.errors.LockNotAvailable:
            waited = conn.execute("show lock_timeout").fetchone()[0]
            raise LockWaitExpired(
                f"waited {waited} for a lock on the window's days or the raw tables, held by another session"
                " (PIPELINE_LOCK_TIMEOUT_SECONDS)"
            ) from None
    if loads and source_url is not None:
        rows = sum(day.row_count for day in loads)
        assets.emit([assets.raw_observations(warehouse.database, source_url, rows, (day.day for day in loads))])
    return loads


@task(name="record-failed-days", cache_policy=NO_CACHE)
def record_failed_days(warehouse: Warehouse, window: Window, error: str, flow_run_id: str | None) -> None:
    """Mark the window's days failed in the ledger, so backfills can find them."""
    with warehouse.connect() as conn:
        ledger.record_failure(conn, window.days, error, flow_run_id)


@task(name="run-dbt", task_run_name="dbt-build", cache_policy=NO_CACHE)
def run_dbt(
    warehouse: Warehouse, settings: Settings, parsed: transform.ParsedProject | None = None
) -> transform.DbtOutcome:
    """`dbt build` of the window in `ops.transform_window` into `audit`; failing nodes fail it, by name and day.

    Each model and seed built becomes a Prefect asset event; PIPELINE_DBT_NODES_AS_TASKS=true runs the
    build through prefect-dbt's PrefectDbtRunner instead, a task run per node.
    """
    if settings.dbt_nodes_as_tasks:
        return transform.build_with_prefect_dbt(warehouse, settings.dbt_project_dir, PREFECT_LOGGING_LEVEL.value())
    return transform.build(
        warehouse, settings.dbt_project_dir, log=get_run_logger(), parsed=parsed, emit_assets=settings.asset_events
    )


@task(name="publish-window", cache_policy=NO_CACHE)
def publish_window(warehouse: Warehouse, window: Window, emit_assets: bool = True) -> None:
    """Copy the audited window into `marts` in one transaction; the marts are then assets from the audit models."""
    with warehouse.connect() as conn:
        transform.publish(conn, window)
    if emit_assets:
        assets.emit(assets.published_marts(warehouse.database, str(window)))


@task(name="ingest-window", task_run_name="ingest-{window}", cache_policy=NO_CACHE)
def ingest_window(
    resources: Resources,
    locations: tuple[Location, ...],
    window: Window,
    flow_run_id: str | None,
    cache: bool = True,
    force: bool = False,
    alone: bool = True,
) -> Ingested:
    """Extract then load one window; a failure in either marks its days failed in the ledger.

    The daily run ingests its window once; a backfill submits one per chunk, in parallel, not
    `alone`: its chunks in flight already overlap their requests, one request at a time each
    (four each measured 1.11× slower in one process on two cores).
    """
    settings, source, warehouse = resources.settings, resources.source, resources.warehouse
    fetch = fetcher(settings, cache=cache)
    started = time.perf_counter()
    try:
        with step("extract", window):
            if source.rate_limit:  # a server without the limit would let calls through unpaced
                ensure_limit_exists(source.rate_limit, RATE_LIMIT_SLOTS, RATE_LIMIT_DECAY_PER_SECOND)
            concurrency = settings.fetch_concurrency if alone else 1
            batches = fetch_batches(fetch, resources, locations, window, flow_run_id, concurrency)
        extracted = time.perf_counter()
        with step("load", window):
            events_from = source.base_url if settings.asset_events else None
            # quote(): nothing in them to wait on; walking 10,000 locations and their arrays cost ~1 s of CPU.
            loads = load_observations(
                warehouse, window, quote(locations), quote(batches), flow_run_id, force, events_from
            )
        return Ingested(loads, extracted - started, time.perf_counter() - extracted)
    except StepFailed as failure:
        try:
            record_failed_days(warehouse, window, str(failure), flow_run_id)
        except Exception:  # the warehouse may be what failed; the original error is what matters
            pass
        raise


def fetch_batches(
    fetch: Task[..., extract.Observations],
    resources: Resources,
    locations: tuple[Location, ...],
    window: Window,
    flow_run_id: str | None,
    concurrency: int,
) -> list[extract.Observations]:
    """Every request of `window` for `locations`, `concurrency` at a time, in the order of the batches.

    The source answers one request while the last one's answer is parsed here. The first request
    goes alone: an answer no request of the window can get past (a 400 for its dates, a spent
    quota) ends the extract after one call, as it would one request after the other.
    """
    settings, source, warehouse = resources.settings, resources.source, resources.warehouse
    requests = [
        {
            "source": source,
            "locations": quote(batch),
            "window": window,
            "rate_limit_timeout": settings.rate_limit_timeout_seconds,
            "warehouse": warehouse,
            "flow_run_id": flow_run_id,
        }
        for batch in extract.batch_locations(locations, settings.locations_per_request)
    ]
    if len(requests) < 2 or concurrency < 2:
        return [fetch(**request) for request in requests]
    first = fetch(**requests[0])
    with ThreadPoolTaskRunner(max_workers=min(concurrency, len(requests) - 1)) as runner:
        futures = [runner.submit(fetch, request) for request in requests[1:]]
        # In order, so the load is the same whichever answer came first. The first failure fails the
        # window; leaving the runner cancels the requests not yet started.
        return [first, *(future.result() for future in futures)]


def ingest_chunks(
    resources: Resources,
    locations: tuple[Location, ...],
    chunks: Sequence[Chunk],
    flow_run_id: str | None,
    force: bool = False,
) -> Iterator[Ingested | StepFailed]:
    """Ingest chunks with at most `backfill_workers` in flight; yields each as it finishes.

    A failed chunk is yielded, not raised, so one bad week does not waste the others.
    """
    pending = []
    queue = list(chunks)
    while queue or pending:
        while queue and len(pending) < resources.settings.backfill_workers:
            chunk = queue.pop(0)
            fetched = chunk.fetched(locations)
            pending.append(
                ingest_window.submit(
                    resources, quote(fetched), chunk.days, flow_run_id, cache=False, force=force, alone=False
                )
            )
        done = next(as_completed(pending))
        pending.remove(done)
        try:
            yield done.result()
        except StepFailed as failure:
            yield failure


@task(name="list-incomplete-days", cache_policy=NO_CACHE)
def list_incomplete_days(warehouse: Warehouse, before: date) -> list[date]:
    """Days still incomplete before `before` (the revision horizon): the archive will not fill them now."""
    with warehouse.connect() as conn:
        return ledger.incomplete_days(conn, before)


@task(name="read-ledger", cache_policy=NO_CACHE)
def read_ledger(warehouse: Warehouse, window: Window) -> dict[date, ledger.DayStatus]:
    """The ledger's view of each day of `window` that has an entry."""
    with warehouse.connect() as conn:
        return ledger.status(conn, window)


def transform_window(
    warehouse: Warehouse,
    window: Window,
    settings: Settings,
    parsed: transform.ParsedProject | None = None,
) -> transform.DbtOutcome:
    """Write-audit-publish: `dbt build` the window into `audit`, then publish it into `marts` if every test passed.

    A failing test fails the build before anything reaches `marts`, which keeps what it
    had; the window stays "not yet transformed" in the ledger, so the next run publishes it.
    One transform at a time per warehouse: two builds at once (a backfill meeting the
    daily run) would race to replace the same audit tables and publish each other's window.
    `parsed` is the project dbt parsed while the run ingested, when the flow started one.
    """
    with (
        step("dbt build", window),
        warehouse.connect(autocommit=True) as conn,
        session_lock(conn, TRANSFORM_LOCK, on_wait=_say_waiting, timeout=settings.transform_lock_timeout_seconds),
    ):
        dbt_started_at = conn.execute("select now()").fetchone()[0]
        transform.set_window(conn, window)
        try:
            outcome = run_dbt(warehouse, settings, parsed)
        except transform.DbtCommandFailed as failed:
            # The days whose rows failed a test are marked failed, as a failed load would be:
            # `--reprocess failed` re-fetches them and `gaps` lists them.
            if days := transform.failing_days(failed.outcome):
                ledger.record_failure(conn, days, str(failed), runtime.flow_run.id, content_failed=True)
            raise
        with step("publish", window):
            publish_window(warehouse, window, settings.asset_events)
        ledger.mark_transformed(conn, window, dbt_started_at)
    return outcome


def _say_waiting() -> None:
    get_run_logger().info("another run is transforming this warehouse; waiting for it to finish")
