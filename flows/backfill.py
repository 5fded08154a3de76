"""Backfill: any range of logical dates, planned from the ledger, loaded in parallel chunks, one dbt build."""

import time
from contextlib import nullcontext
from datetime import UTC, date, datetime

from prefect import flow, runtime
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from blocks import run_resources
from pipeline import quota
from pipeline.backfill import Reprocess, plan_backfill
from pipeline.chunks import load_chunks
from pipeline.dashboard.refresh import refresh_after_publish
from pipeline.errors import step
from pipeline.limits import timed_by
from pipeline.locations import read_chosen_locations, read_locations
from pipeline.runs import run_notifier
from pipeline.summary import RunSummary, WindowSummary
from pipeline.tasks import ingest_window, prepare_warehouse, read_ledger, transform_window
from pipeline.transform import ParsedProject
from pipeline.window import Window, check_not_future, chunk

notify_backfill = run_notifier("backfill")


@flow(
    name="backfill-weather",
    # Chunks run in this flow's thread pool, at most `backfill_workers` at once: the bound
    # that matters is this machine's cores and its Postgres, and a pool costs no API
    # round trip per chunk the way a global concurrency limit would.
    task_runner=ThreadPoolTaskRunner(max_workers=16),
    on_completion=[notify_backfill],
    on_failure=[notify_backfill],
)
@timed_by("backfill_timeout_seconds")
def backfill_weather(
    start_date: date,
    end_date: date,
    reprocess: Reprocess = "missing",
    dry_run: bool = False,
    spread: bool = False,
) -> RunSummary:
    """Load the days (and locations) of [start_date, end_date] that the ledger says need it, then build,
    test and publish them with one dbt build.

    Args:
        spread: load each chunk as a flow run of the backfill-chunk deployment, on any worker of its
            pool (at most `weather-backfill-chunks` at once), instead of in this run's own threads.
    """
    resources = run_resources()
    settings = resources.settings
    today = datetime.now(UTC).date()
    window = Window(check_not_future(start_date, today, "start_date"), check_not_future(end_date, today, "end_date"))
    with step("prepare", window):
        warehouse = resources.warehouse
        # A dry run only reads: no migration, no locations reload.
        locations = (
            read_locations(settings.locations_file)
            if dry_run
            else prepare_warehouse(warehouse, settings.locations_file, settings.asset_events)
        )
        ledger = read_ledger(warehouse, window)
    active = [location.location_id for location in locations]
    plan = plan_backfill(window, ledger, reprocess, settings.backfill_chunk_days, active)
    # Against the public API, load only the chunks that fit in this hour's and today's calls.
    budget = quota.budget(warehouse, settings, plan.chunks, len(locations), datetime.now(UTC))
    description = plan.describe(len(locations), settings.locations_per_request, budget.calls)
    description = "\n".join(filter(None, [description, budget.description]))
    get_run_logger().info(description)
    planned = RunSummary(
        kind="backfill",
        window=WindowSummary.of(window),
        reprocess=reprocess,
        plan=description,
        days_planned=len(plan.load_days),
        api_calls=budget.calls,
    )
    if dry_run:
        return planned.model_copy(update={"dry_run": True})

    # dbt is imported and the project parsed in the background while the chunks load.
    parsed = ParsedProject(warehouse, settings.dbt_project_dir) if plan.dbt_window else None
    with parsed or nullcontext():
        chunks = plan.chunks[: budget.admitted]
        # "all" means rewrite: it also repairs days whose rows no longer match their checksum.
        force = reprocess == "all"
        landed = load_chunks(resources, locations, window, chunks, ledger, runtime.flow_run.id, force, spread)
        transform_started = time.perf_counter()
        tests = transform_window(warehouse, plan.dbt_window, settings, parsed) if plan.dbt_window else None
    summary = landed.summary(planned, tests, time.perf_counter() - transform_started, budget.stopped)
    if tests:  # something was published
        summary = refresh_after_publish(summary)
    create_table_artifact([summary.table_row()], key="backfill-summary", description=f"backfill {window}")
    return summary


# A chunk is a slice of a backfill: the backfill's own bound applies to it as well.
@flow(name="backfill-chunk")
@timed_by("backfill_timeout_seconds")
def backfill_chunk(
    first: date, last: date, location_ids: list[str], force: bool = False, chunk_days: int | None = None
) -> int:
    """Load a spread backfill's chunks: the days [first, last] of `location_ids`, `chunk_days` at a time (all at
    once without it), one after another; returns the rows loaded.

    The backfill that started it plans, transforms and reports; this run only extracts and loads.
    """
    resources = run_resources()
    window = Window(first, last)
    with step("prepare", window):
        # Every worker reads the same locations file; one that lacks a location says so.
        locations = read_chosen_locations(resources.settings.locations_file, location_ids)
    return sum(
        ingest_window(resources, quote(locations), days, runtime.flow_run.id, cache=False, force=force).rows
        for days in chunk(window, chunk_days or len(window))
    )
