"""The BI dashboard in a real browser: Superset from its locked virtualenv, a daily run, Chromium through Playwright.

One Superset for the module (~40 s to set up on SQLite, the first time also ~15 s to install).
"""

import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Page, sync_playwright
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.testing.utilities import prefect_test_harness

from flows.daily import daily_weather
from pipeline import warehouse
from pipeline.dashboard import server, spec
from pipeline.dashboard.client import SupersetClient
from pipeline.dashboard.deploy import apply, prepare_warehouse
from pipeline.dashboard.refresh import refresh
from pipeline.dashboard.settings import DashboardSettings
from pipeline.processes import free_port, start_process, stop_process, wait_until
from pipeline.settings import PROJECT_ROOT
from pipeline.source_server import FaultPlan

CHROMIUM = "/usr/bin/chromium"
# Set to keep the screenshot (docs/dashboard.png is one).
SCREENSHOT_DIR = os.environ.get("PIPELINE_E2E_SCREENSHOTS")
LOCATIONS = """location_id,name,latitude,longitude
ams,Amsterdam,52.3676,4.9041
cpt,Cape Town,-33.9249,18.4241
rey,Reykjavík,64.1466,-21.9426
"""
# Yesterday is the day due at any hour with a midnight deadline: whether it is late never
# depends on when the test runs.
DEADLINE = "00:00"
CHARTS = len(spec.CHARTS)
BROWSER_TIMEOUT_MS = 120_000
STARTED = time.perf_counter()


@dataclass(frozen=True)
class Superset:
    url: str
    password: str
    reader_password: str


@pytest.fixture(scope="module")
def superset(tmp_path_factory):
    """Superset under gunicorn on a free port, its metadata in SQLite (tests only; `up` uses Postgres)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    venv = server.install()
    home = server.SupersetHome(tmp_path_factory.mktemp("superset"))
    values = server.ensure_secrets(home.secrets)
    env = server.superset_env(home, values, None)
    server.set_up(venv, home, env, values["PIPELINE_DASHBOARD_PASSWORD"])
    url = f"http://127.0.0.1:{free_port()}"
    process = start_process("dashboard", server.web_command(venv, int(url.rsplit(":", 1)[1])), env, home.root / "log")
    try:
        wait_until(lambda: server.healthy(url), process, 180.0, f"Superset at {url}")
        yield Superset(url, values["PIPELINE_DASHBOARD_PASSWORD"], values["PIPELINE_DASHBOARD_READER_PASSWORD"])
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def pipeline(superset, module_database_url, tmp_path_factory):
    """The pipeline pointed at a throwaway warehouse, the local source server and the test's Superset."""
    from pipeline.source_server import SourceServer

    locations = tmp_path_factory.mktemp("locations") / "locations.csv"
    locations.write_text(LOCATIONS, encoding="utf-8")
    with SourceServer() as source, pytest.MonkeyPatch.context() as patch, prefect_test_harness(180):
        for name, value in {
            "PIPELINE_DATABASE_URL": module_database_url,
            "PIPELINE_SOURCE_URL": source.url,
            "PIPELINE_SOURCE_RATE_LIMIT": "",
            "PIPELINE_LOCATIONS_FILE": str(locations),
            "PIPELINE_DEADLINE": DEADLINE,
            "PIPELINE_DASHBOARD_URL": superset.url,
            "PIPELINE_DASHBOARD_PASSWORD": superset.password,
        }.items():
            patch.setenv(name, value)
        prepare_warehouse(module_database_url, superset.reader_password, PROJECT_ROOT / "dbt_project")
        with SupersetClient(superset.url, server.ADMIN_USER, superset.password) as client:
            apply(client, server.reader_url(module_database_url, superset.reader_password))
        yield source


def test_dashboard_shows_the_published_marts_and_turns_stale_when_a_day_fails(
    superset, pipeline, module_database_url, tmp_path
):
    day = datetime.now(UTC).date() - timedelta(days=1)

    # A clean run publishes `day` and refreshes the dashboard.
    first = daily_weather(logical_date=day, lookback_days=1, return_state=True)
    assert first.is_completed(), first.result(raise_on_failure=False)
    assert first.result().warnings == []
    with psycopg.connect(module_database_url, autocommit=True) as db:
        location_count, value = db.execute(
            "select count(*), max(temperature_2m_mean) filter (where location_id = 'ams')"
            " from marts.fct_daily_weather where weather_date = %s",
            [day],
        ).fetchone()
        published = warehouse.day_checksums(db, "mart")
    started = time.perf_counter()
    refresh(DashboardSettings())
    refresh_seconds = time.perf_counter() - started
    print(f"dashboard: first run done at {time.perf_counter() - STARTED:.0f} s")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1700})
        # Superset's first page load parses ~10 MB of JavaScript: slow on a busy 2-core machine.
        page.set_default_timeout(BROWSER_TIMEOUT_MS)
        page.goto(f"{superset.url}/superset/dashboard/{spec.DASHBOARD_SLUG}/")
        assert "/login/" in page.url  # anonymous visitors get the login page, not data
        log_in(page, superset)

        cards = open_dashboard(page, superset)
        save_screenshot(page, tmp_path)
        assert f"{day.isoformat()}\n{location_count} locations" in cards["Data as of"]
        assert cards["Freshness"].startswith(f"Fresh: {day.isoformat()} landed")
        assert f"\t{value:g}\t" in row_of(cards["Last 7 days"], day, "Amsterdam")

        # A hot day fails its data test: nothing is published, nothing refreshed, and the day is late.
        pipeline.faults = FaultPlan(hot_day=1.0, only_on=day)
        failed = daily_weather(logical_date=day, lookback_days=0, return_state=True)
        pipeline.faults = FaultPlan()
        assert failed.is_failed()
        assert "refresh-dashboard" not in task_runs(failed)
        with psycopg.connect(module_database_url, autocommit=True) as db:
            assert warehouse.day_checksums(db, "mart") == published

        cards = open_dashboard(page, superset)
        save_screenshot(page, tmp_path, "stale")
        browser.close()
    assert f"{day.isoformat()}\n{location_count} locations" in cards["Data as of"]
    assert cards["Freshness"].startswith(f"STALE since {(day + timedelta(days=1)).isoformat()} 00:00 UTC")
    assert f"\t{value:g}\t" in row_of(cards["Last 7 days"], day, "Amsterdam")
    print(f"dashboard refresh: {refresh_seconds:.2f} s; test done at {time.perf_counter() - STARTED:.0f} s")


def log_in(page: Page, superset: Superset) -> None:
    page.fill("[data-test=username-input]", server.ADMIN_USER)
    page.fill("[data-test=password-input]", superset.password)
    page.click("[data-test=login-button]")
    page.wait_for_url("**/superset/**")


def open_dashboard(page: Page, superset: Superset) -> dict[str, str]:
    """Every chart's text by title, once all have rendered; a chart showing an error fails the test."""
    page.goto(f"{superset.url}/superset/dashboard/{spec.DASHBOARD_SLUG}/")
    holders = page.locator("[data-test=chart-grid-component]")
    try:
        page.wait_for_function(f"document.querySelectorAll('[data-test=chart-grid-component]').length === {CHARTS}")
        page.wait_for_load_state("networkidle")
        page.wait_for_function(
            "!document.querySelector('[data-test=chart-grid-component] [data-test=loading-indicator]')"
        )
    except Exception:
        if SCREENSHOT_DIR:
            page.screenshot(path=Path(SCREENSHOT_DIR) / "dashboard-failed.png", full_page=True)
        raise
    cards = {}
    for index in range(holders.count()):
        holder = holders.nth(index)
        title = holder.locator("[data-test=editable-title]").inner_text().strip()
        errors = holder.locator("[role=alert], [data-test=error-tooltip]")
        assert errors.count() == 0, f"chart {title!r} shows an error: {holder.inner_text()}"
        body = holder.locator("[data-test=chart-container], [data-test=slice-container]").first
        cards[title] = body.inner_text().strip()
        if title.startswith("Daily"):  # an ECharts chart draws on a canvas, with no text
            assert holder.locator("canvas").count() > 0, f"chart {title!r} drew nothing"
        else:
            assert cards[title], f"chart {title!r} is empty"
    assert len(cards) == CHARTS
    return cards


def row_of(table: str, day, location: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(f"{day.isoformat()}\t{location}\t"))


def task_runs(state) -> set[str]:
    flow_run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        return {run.name.rsplit("-", 1)[0] for run in client.read_task_runs(flow_run_filter=flow_run_filter)}


def save_screenshot(page: Page, tmp_path: Path, suffix: str = "") -> None:
    name = f"dashboard{'-' + suffix if suffix else ''}.png"
    page.screenshot(path=tmp_path / name, full_page=True)
    if SCREENSHOT_DIR:
        shutil.copy(tmp_path / name, Path(SCREENSHOT_DIR) / name)
