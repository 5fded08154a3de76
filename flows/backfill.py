"""Backfill: any range of logical dates, planned from the ledger, loaded in parallel chunks, one dbt build."""

import time
from contextlib import nullcontext
from datetime import UTC, date, datetime

from prefect import flow, runtime
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from blocks import run_resources
from pipeline import quota
from pipeline.backfill import Reprocess, plan_backfill
from pipeline.dashboard.refresh import refresh_after_publish
from pipeline.errors import StepFailed, step
from pipeline.limits import timed_by
from pipeline.locations import read_locations
from pipeline.progress import BackfillProgress
from pipeline.runs import run_notifier
from pipeline.spread import ensure_chunk_limit, spread_chunks
from pipeline.summary import RunSummary, TestCounts, WindowSummary
from pipeline.tasks import ingest_chunks, ingest_window, prepare_warehouse, read_ledger, transform_window
from pipeline.transform import ParsedProject
from pipeline.window import Window, check_not_future

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
            else prepare_warehouse(warehouse, settings.locations_file)
        )
        ledger = read_ledger(warehouse, window)
    active = [location.location_id for location in locations]
    plan = plan_backfill(window, ledger, reprocess, settings.backfill_chunk_days, active)
    description = plan.describe(len(locations), settings.locations_per_request)
    # Against the public API, load only the chunks that fit in this hour's and today's calls.
    chunks, admission, limits = plan.chunks, None, quota.limits(settings)
    if limits is not None:
        now = datetime.now(UTC)
        # A chunk that fills in newly added locations fetches only those.
        subsets = plan.chunk_locations or (None,) * len(plan.chunks)
        costs = [
            quota.chunk_calls([chunk], len(locations) if ids is None else len(ids), settings.locations_per_request)[0]
            for chunk, ids in zip(plan.chunks, subsets, strict=True)
        ]
        used = quota.current_usage(warehouse, now)
        description += "\n" + quota.describe(costs, used, limits, now)
        admission = quota.admit(costs, used, limits, now)
        chunks = plan.chunks[: admission.chunks]
    get_run_logger().info(description)
    planned = {
        "kind": "backfill",
        "window": WindowSummary.of(window),
        "reprocess": reprocess,
        "plan": description,
        "days_planned": len(plan.load_days),
        "api_calls": plan.api_calls(len(locations), settings.locations_per_request),
    }
    if dry_run:
        return RunSummary(**planned, dry_run=True)

    # dbt is imported and the project parsed in the background while the chunks load.
    parsed = ParsedProject(warehouse, settings.dbt_project_dir) if plan.dbt_window else None
    with parsed or nullcontext():
        with BackfillProgress(sum(len(chunk) for chunk in chunks)) as progress:
            progress_started = time.perf_counter()
            failures: list[StepFailed] = []
            changed = 0
            # "all" means rewrite: it also repairs days whose rows no longer match their checksum.
            if spread:
                get_run_logger().info(ensure_chunk_limit(settings.backfill_workers))
                outcomes = spread_chunks(
                    warehouse,
                    [location.location_id for location in locations],
                    chunks,
                    reprocess == "all",
                    plan.chunk_locations[: len(chunks)],
                )
            else:
                outcomes = ingest_chunks(
                    resources,
                    locations,
                    chunks,
                    runtime.flow_run.id,
                    reprocess == "all",
                    plan.chunk_locations[: len(chunks)],
                )
            for outcome in outcomes:
                if isinstance(outcome, StepFailed):
                    failures.append(outcome)
                    continue
                changed += sum(
                    1 for day in outcome.loads if day.day in ledger and ledger[day.day].checksum != day.checksum
                )
                progress.advance(len(outcome.loads), outcome.rows)
        if failures:
            raise StepFailed(
                failures[0].step,
                window,
                RuntimeError(f"{len(failures)} of {len(chunks)} chunks failed, first: {failures[0]}"),
            )
        ingest_seconds = time.perf_counter() - progress_started
        tests = transform_window(warehouse, plan.dbt_window, settings, parsed) if plan.dbt_window else None
    summary = RunSummary(
        **planned,
        seconds={
            "ingest": round(ingest_seconds, 3),
            "dbt": round(time.perf_counter() - progress_started - ingest_seconds, 3),
        },
        rows_loaded=progress.rows,
        days_loaded=sum(len(chunk) for chunk in chunks),
        stopped=quota.stopped_message(admission) if admission and admission.spent else None,
        checksums_changed=changed,
        dbt_tests=TestCounts(counts=tests.counts, failures=[]) if tests else None,
    )
    if tests:  # something was published
        summary = refresh_after_publish(summary)
    create_table_artifact([summary_row(summary)], key="backfill-summary", description=f"backfill {window}")
    return summary


# A chunk is a slice of a backfill: the backfill's own bound applies to it as well.
@flow(name="backfill-chunk")
@timed_by("backfill_timeout_seconds")
def backfill_chunk(first: date, last: date, location_ids: list[str], force: bool = False) -> int:
    """Load one chunk of a spread backfill: the days [first, last] of `location_ids`; returns the rows loaded.

    The backfill that started it plans, transforms and reports; this run only extracts and loads.
    """
    resources = run_resources()
    window = Window(first, last)
    with step("prepare", window):
        # Every worker reads the same locations file; one that lacks a location says so.
        by_id = {location.location_id: location for location in read_locations(resources.settings.locations_file)}
        if unknown := [location_id for location_id in location_ids if location_id not in by_id]:
            raise ValueError(
                f"locations {', '.join(unknown)} are not in this worker's locations file"
                f" {resources.settings.locations_file}"
            )
    locations = tuple(by_id[location_id] for location_id in location_ids)
    return ingest_window(resources, locations, window, runtime.flow_run.id, cache=False, force=force).rows


def summary_row(summary: RunSummary) -> dict:
    """The backfill's outcome as one row of the summary table artifact."""
    return {
        "window": str(summary.window),
        "reprocess": summary.reprocess,
        "days_planned": summary.days_planned,
        "rows_loaded": summary.rows_loaded,
        "checksums_changed": summary.checksums_changed,
        "api_calls": summary.api_calls,
        "dbt_tests": summary.dbt_tests.counts if summary.dbt_tests else None,
    }
