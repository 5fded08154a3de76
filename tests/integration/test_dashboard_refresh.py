"""The refresh after a publish: none without a dashboard, a warning (never a failure) when it is down."""

from datetime import date

from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.daily import daily_weather
from pipeline.processes import free_port

DAY = date(2024, 3, 9)
PASSWORD = "not-in-any-log-4f1c"


def task_runs(state) -> set[str]:
    flow_run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        return {run.name.rsplit("-", 1)[0] for run in client.read_task_runs(flow_run_filter=flow_run_filter)}


def test_a_run_without_a_dashboard_has_no_refresh_step(pipeline_env, monkeypatch):
    monkeypatch.delenv("PIPELINE_DASHBOARD_URL", raising=False)

    state = daily_weather(logical_date=DAY, lookback_days=0, return_state=True)

    assert state.is_completed()
    assert state.result().warnings == []
    assert "refresh-dashboard" not in task_runs(state)
    assert "warnings" not in state.result().data()


def test_a_dashboard_that_is_down_leaves_the_run_successful_with_a_warning(pipeline_env, db, monkeypatch, caplog):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("PIPELINE_DASHBOARD_URL", url)
    monkeypatch.setenv("PIPELINE_DASHBOARD_PASSWORD", PASSWORD)
    monkeypatch.setenv("PIPELINE_DASHBOARD_REFRESH_RETRIES", "1")
    monkeypatch.setenv("PIPELINE_DASHBOARD_REFRESH_RETRY_DELAY_SECONDS", "0")

    state = daily_weather(logical_date=DAY, lookback_days=0, return_state=True)

    assert state.is_completed()
    (warning,) = state.result().warnings
    assert warning.startswith(
        f"dashboard at {url} not refreshed: Superset at {url} did not answer POST /security/login"
    )
    assert state.result().data()["warnings"] == [warning]
    assert "refresh-dashboard" in task_runs(state)
    assert db.execute("select count(*) from marts.fct_daily_weather").fetchone()[0] == 5  # published all the same
    assert PASSWORD not in caplog.text
