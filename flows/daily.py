"""The daily run: one logical day plus a short lookback, ingest → load → dbt build (audit) → publish."""

import time
from datetime import UTC, date, datetime, timedelta

from prefect import flow, get_run_logger, runtime
from prefect.utilities.annotations import quote

from blocks import Resources, run_resources
from pipeline.backfill import revisit_window
from pipeline.dashboard.refresh import refresh_after_publish
from pipeline.errors import step
from pipeline.limits import timed_by
from pipeline.lookups import scheduled_logical_date
from pipeline.runs import alert_incomplete_days, run_notifier
from pipeline.summary import RunSummary, TestCounts, WindowSummary
from pipeline.tasks import ingest_window, list_incomplete_days, prepare_warehouse, read_ledger, transform_window
from pipeline.transform import ParsedProject
from pipeline.window import Window, check_not_future, daily_window

notify_daily = run_notifier("daily")


@flow(
    name="daily-weather",
    on_completion=[notify_daily],
    on_failure=[notify_daily],
)
@timed_by("daily_timeout_seconds")
def daily_weather(logical_date: date | None = None, lookback_days: int | None = None) -> RunSummary:
    """Process logical date D (default: the day before the run's scheduled start), D's lookback, and
    any incomplete day inside the revision horizon."""
    resources = run_resources()
    settings = resources.settings
    day = check_not_future(logical_date or scheduled_logical_date(), datetime.now(UTC).date(), "logical_date")
    window = daily_window(day, settings.lookback_days if lookback_days is None else lookback_days)
    horizon = day - timedelta(days=settings.revision_horizon_days)
    with step("prepare", window):
        warehouse = resources.warehouse
    with ParsedProject(warehouse, settings.dbt_project_dir) as parsed:
        return _process(resources, day, window, horizon, parsed)


def _process(resources: Resources, day: date, window: Window, horizon: date, parsed: ParsedProject) -> RunSummary:
    settings, warehouse = resources.settings, resources.warehouse
    with step("prepare", window):
        locations = prepare_warehouse(warehouse, settings.locations_file, settings.asset_events)
        if horizon < window.first:
            window = revisit_window(window, read_ledger(warehouse, Window(horizon, window.first - timedelta(days=1))))
        # Past the horizon the archive will not fill a day any more: one alert per such day.
        if stale := list_incomplete_days(warehouse, horizon):
            get_run_logger().warning("days still incomplete past the revision horizon: %s", ", ".join(map(str, stale)))
            alert_incomplete_days(resources, stale, settings.revision_horizon_days)
    # quote(): Prefect would walk every location looking for futures to wait on (~1 s at 10,000).
    ingested = ingest_window(resources, quote(locations), window, runtime.flow_run.id)
    transform_started = time.perf_counter()
    built = transform_window(warehouse, window, settings, parsed)
    summary = RunSummary(
        kind="daily",
        logical_date=day,
        window=WindowSummary.of(window),
        rows_loaded=ingested.rows,
        seconds={
            "extract": round(ingested.extract_seconds, 3),
            "load": round(ingested.load_seconds, 3),
            "dbt": round(time.perf_counter() - transform_started, 3),
        },
        dbt_models=built.model_counts,
        dbt_tests=TestCounts(counts=built.counts),
    )
    return refresh_after_publish(summary)
