"""The daily run: one logical day plus a short lookback, ingest → load → dbt build (audit) → publish."""

import time
from datetime import UTC, date, datetime

from prefect import flow, runtime

from blocks import resolve_settings
from pipeline.runs import scheduled_logical_date, send_run_notification, warehouse_dsn, window_data
from pipeline.tasks import ingest_window, prepare_warehouse, step, transform_window
from pipeline.window import check_not_future, daily_window


@flow(name="daily-weather", on_completion=[send_run_notification], on_failure=[send_run_notification])
def daily_weather(logical_date: date | None = None, lookback_days: int | None = None) -> dict:
    """Process logical date D (default: the day before the run's scheduled start) and D's lookback."""
    settings = resolve_settings()
    day = check_not_future(logical_date or scheduled_logical_date(), datetime.now(UTC).date(), "logical_date")
    window = daily_window(day, settings.lookback_days if lookback_days is None else lookback_days)
    with step("prepare", window):
        dsn = warehouse_dsn(settings)
        locations = prepare_warehouse(dsn, settings.locations_file)
    ingested = ingest_window(settings, dsn, locations, window, runtime.flow_run.id)
    transform_started = time.perf_counter()
    built = transform_window(dsn, window, settings.dbt_project_dir)
    return {
        "kind": "daily",
        "logical_date": day.isoformat(),
        "window": window_data(window),
        "rows_loaded": ingested.rows,
        "seconds": {
            "extract": round(ingested.extract_seconds, 3),
            "load": round(ingested.load_seconds, 3),
            "dbt": round(time.perf_counter() - transform_started, 3),
        },
        "dbt_models": built.model_counts,
        "dbt_tests": {"counts": built.counts, "failures": []},
    }
