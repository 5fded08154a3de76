"""After a publish: drop Superset's cached results for the dashboard's datasets and warm its charts again."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipeline.dashboard import spec
from pipeline.dashboard.client import SupersetClient, SupersetError
from pipeline.dashboard.settings import DashboardSettings
from pipeline.summary import RunSummary

# Charts warmed at once: Superset's gunicorn workers answer them in parallel.
WARM_UP_THREADS = 4


@dataclass(frozen=True)
class Refreshed:
    charts: int
    errors: dict[str, str]


def refresh(settings: DashboardSettings) -> Refreshed:
    """Invalidate the cached results of every dataset of the dashboard, then compute each cached chart once."""
    if not settings.url or settings.password is None:
        raise SupersetError("PIPELINE_DASHBOARD_URL and PIPELINE_DASHBOARD_PASSWORD must both be set")
    password = settings.password.get_secret_value()
    with SupersetClient(settings.url, settings.user, password, settings.timeout_seconds) as client:
        datasources = [
            {
                "datasource_name": dataset.name,
                "datasource_type": "table",
                "schema": spec.SCHEMA,
                "database_name": spec.DATABASE_NAME,
            }
            for dataset in spec.DATASETS
        ]
        client.post("/cachekey/invalidate", {"datasources": datasources})
        charts = client.get(f"/dashboard/{spec.DASHBOARD_SLUG}/charts")["result"]
        # Charts on uncached datasets (freshness, day status) compute on every view: nothing to warm.
        cached = [chart for chart in charts if chart["slice_name"] in spec.cached_charts()]

        def warm(chart: dict) -> tuple[str, str | None]:
            (result,) = client.put("/chart/warm_up_cache", {"chart_id": chart["id"]})["result"]
            return chart["slice_name"], result.get("viz_error")

        with ThreadPoolExecutor(WARM_UP_THREADS) as pool:
            errors = {name: error for name, error in pool.map(warm, cached) if error}
    return Refreshed(charts=len(cached), errors=errors)


# Settings are read inside, so no password becomes a task parameter; nothing is cached between runs.
@task(name="refresh-dashboard", cache_policy=NO_CACHE, timeout_seconds=60)
def refresh_dashboard() -> Refreshed:
    """The refresh as a task: retried (briefly) on I/O, and a chart that fails to compute fails it."""
    refreshed = refresh(DashboardSettings())
    if refreshed.errors:
        raise SupersetError(f"charts failed to compute: {refreshed.errors}")
    return refreshed


def refresh_after_publish(summary: RunSummary) -> RunSummary:
    """Refresh the dashboard, if one is configured; a failure is the summary's warning, never the run's failure.

    The next successful run refreshes again, so a dashboard that was down catches up.
    """
    settings = DashboardSettings()
    if not settings.url:
        return summary
    state = refresh_dashboard.with_options(
        retries=settings.refresh_retries, retry_delay_seconds=settings.refresh_retry_delay_seconds
    )(return_state=True)
    if state.is_completed():
        return summary
    warning = f"dashboard at {settings.url} not refreshed: {state.result(raise_on_failure=False)}"
    get_run_logger().warning(warning)
    return summary.model_copy(update={"warnings": [*summary.warnings, warning]})
