"""The daily run: one logical day plus a short lookback, ingest → load → dbt run → dbt test."""

from datetime import UTC, date, datetime

from prefect import flow, runtime
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.runs import scheduled_logical_date, send_run_notification, warehouse_dsn, window_data
from pipeline.settings import Settings
from pipeline.tasks import ingest, prepare_warehouse, run_dbt, step
from pipeline.window import check_not_future, daily_window


@flow(
    name="daily-weather",
    task_runner=ThreadPoolTaskRunner(max_workers=4),
    on_completion=[send_run_notification],
    on_failure=[send_run_notification],
)
def daily_weather(logical_date: date | None = None, lookback_days: int | None = None) -> dict:
    """Process logical date D (default: the day before the run's scheduled start) and D's lookback."""
    settings = Settings()
    day = check_not_future(logical_date or scheduled_logical_date(), datetime.now(UTC).date(), "logical_date")
    window = daily_window(day, settings.lookback_days if lookback_days is None else lookback_days)
    run_id = runtime.flow_run.id
    with step("prepare", window):
        dsn = warehouse_dsn(settings)
        locations = prepare_warehouse(dsn, settings.locations_file)
    loads = ingest(settings, dsn, locations, window, run_id)
    with step("dbt run", window):
        models = run_dbt("run", window, dsn, settings.dbt_project_dir)
    with step("dbt test", window):
        tests = run_dbt("test", window, dsn, settings.dbt_project_dir)
    return {
        "kind": "daily",
        "logical_date": day.isoformat(),
        "window": window_data(window),
        "rows_loaded": sum(load.row_count for load in loads),
        "dbt_models": models.counts,
        "dbt_tests": {"counts": tests.counts, "failures": []},
    }
