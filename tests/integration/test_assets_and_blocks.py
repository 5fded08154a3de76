"""The warehouse as a user's own SqlAlchemyConnector, secrets kept out of what a run records, asset lineage
and the PrefectDbtRunner build, all through a real Prefect server, real Postgres and real dbt."""

import json
import logging
import uuid
from datetime import date, timedelta

import psycopg
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventRelatedFilter
from prefect.events.worker import EventsWorker
from prefect_sqlalchemy import SqlAlchemyConnector
from psycopg import sql

from blocks import WarehouseNotConfigured, resolve_resources
from flows.daily import daily_weather
from pipeline.cli import main
from tests.support import poll_until

DAY = date(2024, 3, 9)


def run(logical_date=DAY, lookback_days=0):
    return daily_weather(logical_date=logical_date, lookback_days=lookback_days, return_state=True)


def failure_message(state) -> str:
    return str(state.result(raise_on_failure=False))


def flow_run_events(state, prefix: str = "", until: str | None = None) -> list:
    """Every event the server holds that names the flow run as related, paging through `next_page`.

    `until`: wait for an event about this resource first; the server persists events in batches.
    """
    EventsWorker.drain_all()  # the run's events are sent from a background worker
    if until is not None:
        poll_until(
            lambda: any(event.resource.id == until for event in _read_events(state, prefix)),
            timeout=30,
            interval=0.5,
            what=f"an event about {until}",
        )
    return _read_events(state, prefix)


def _read_events(state, prefix: str) -> list:
    flow_run = f"prefect.flow-run.{state.state_details.flow_run_id}"
    event_filter = EventFilter(
        occurred=EventOccurredFilter(since=state.timestamp - timedelta(hours=1)),
        related=EventRelatedFilter(id=[flow_run]),
        event=EventNameFilter(prefix=[prefix]) if prefix else None,
    )
    with get_client(sync_client=True) as client:
        page = client.read_events(filter=event_filter, limit=50)
        events = list(page.events)
        while page.next_page:
            page = client.read_events_page(page.next_page)
            events.extend(page.events)
    return events


def lineage(events) -> dict[str, set[str]]:
    """Materialized asset key → keys of its upstream assets, from materialization events."""
    found: dict[str, set[str]] = {}
    for event in events:
        if event.event == "prefect.asset.materialization.succeeded":
            upstream = {related.id for related in event.related if related.role == "asset"}
            found.setdefault(event.resource.id, set()).update(upstream)
    return found


def materialized_by(events, key: str) -> set[str]:
    return {
        related.id
        for event in events
        if event.event.startswith("prefect.asset.materialization") and event.resource.id == key
        for related in event.related
        if related.role == "asset-materialized-by"
    }


@pytest.fixture
def password_role(pipeline_env):
    """A login role with a password that owns what the run creates; trust auth ignores the password, the pipeline
    still carries it everywhere a real one would go."""
    role = f"weather_etl_{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    info = psycopg.conninfo.conninfo_to_dict(pipeline_env)
    with psycopg.connect(pipeline_env, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} login password {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(
            sql.SQL("grant all on database {} to {}").format(sql.Identifier(info["dbname"]), sql.Identifier(role))
        )
    yield role, password
    with psycopg.connect(pipeline_env, autocommit=True) as conn:
        conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


@pytest.fixture
def users_block(pipeline_env, password_role, monkeypatch):
    """The user's own SqlAlchemyConnector (URL form, psycopg2 driver) on the server, named by
    PIPELINE_WAREHOUSE_BLOCK; PIPELINE_DATABASE_URL unset."""
    role, password = password_role
    info = psycopg.conninfo.conninfo_to_dict(pipeline_env)
    name = f"team-warehouse-{uuid.uuid4().hex[:6]}"
    server = f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}"
    url = f"postgresql+psycopg2://{role}:{password}@{server}/{info['dbname']}"
    SqlAlchemyConnector(connection_info=url).save(name)
    monkeypatch.delenv("PIPELINE_DATABASE_URL")
    monkeypatch.setenv("PIPELINE_WAREHOUSE_BLOCK", name)
    yield role, password
    SqlAlchemyConnector.delete(name)


def test_a_daily_run_on_a_users_connector_block_never_shows_its_password(users_block, db, caplog, capfd):
    role, password = users_block

    with caplog.at_level(logging.DEBUG):
        state = run()

    assert state.is_completed(), failure_message(state)
    # The run worked as the block's role: it owns what it created.
    assert db.execute("select tableowner from pg_tables where schemaname = 'marts' limit 1").fetchone()[0] == role
    assert db.execute("select count(*) from marts.fct_daily_weather").fetchone()[0] == 5
    flow_run_id = state.state_details.flow_run_id
    # The run's log lines reach the server in batches: wait until dbt's have arrived.
    logs = poll_until(lambda: dbt_lines_seen(run_logs(flow_run_id)), 60, 1, "dbt's lines in the run's log")
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    database = db.execute("select current_database()").fetchone()[0]
    events = flow_run_events(state, until=f"postgres://{database}/marts/dim_locations")
    assert events
    assert password not in "\n".join(log.message for log in logs)
    assert password not in json.dumps([artifact.model_dump(mode="json") for artifact in artifacts])
    assert password not in json.dumps([event.model_dump(mode="json") for event in events])
    assert password not in caplog.text
    # A command that is not a flow run reads the same document: DAY is loaded, the days after it are not.
    assert main(["gaps", "--since", str(DAY)]) == 1
    captured = capfd.readouterr()
    assert f"checked {DAY}.." in captured.out
    assert f"pipeline backfill --start {DAY + timedelta(days=1)} " in captured.out
    assert password not in captured.out + captured.err


def run_logs(flow_run_id) -> list:
    """Every log line the server holds for the run, page by page."""
    logs: list = []
    with get_client(sync_client=True) as client:
        while page := client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200, offset=len(logs)
        ):
            logs.extend(page)
    return logs


def dbt_lines_seen(logs: list) -> list:
    """`logs` once one of them is a dbt line, else an empty list."""
    return logs if any("dbt: " in log.message for log in logs) else []


def test_a_daily_runs_asset_events_read_source_api_raw_staging_audit_marts(pipeline_env, db, source, locations_file):
    state = run()

    assert state.is_completed(), failure_message(state)
    database = db.execute("select current_database()").fetchone()[0]
    key = f"postgres://{database}".__add__
    events = flow_run_events(state, "prefect.asset.", until=key("/marts/dim_locations"))
    graph = lineage(events)
    assert graph[key("/raw/hourly_weather")] == {f"{source.url}/v1/archive"}
    assert graph[key("/raw/locations")] == {f"file://{locations_file.resolve()}"}
    assert key("/raw/locations") in graph[key("/staging/stg_open_meteo__locations")]
    assert key("/raw/hourly_weather") in graph[key("/staging/stg_open_meteo__hourly_weather")]
    assert key("/staging/stg_open_meteo__hourly_weather") in graph[key("/audit/fct_daily_weather")]
    assert graph[key("/marts/fct_daily_weather")] == {key("/audit/fct_daily_weather")}
    assert graph[key("/marts/dim_locations")] == {key("/audit/dim_locations")}
    assert materialized_by(events, key("/audit/fct_daily_weather")) == {"dbt"}
    assert materialized_by(events, key("/raw/hourly_weather")) == {"weather-pipeline"}
    referenced = {event.resource.id for event in events if event.event == "prefect.asset.referenced"}
    assert {f"{source.url}/v1/archive", key("/raw/hourly_weather"), key("/audit/fct_daily_weather")} <= referenced


@pytest.mark.timeout(900)
def test_dbt_nodes_as_tasks_builds_a_task_per_node_at_any_log_level_and_names_failing_tests(
    pipeline_env, db, monkeypatch
):
    monkeypatch.setenv("PIPELINE_DBT_NODES_AS_TASKS", "true")
    # prefect-dbt's own settings fail on this level unless the pipeline maps it for dbt.
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")

    state = run(DAY - timedelta(days=1))  # DAY itself stays new for the failing run below

    assert state.is_completed(), failure_message(state)
    with get_client(sync_client=True) as client:
        names = {
            task_run.name
            for task_run in client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            )
        }
    assert {"model fct_daily_weather", "model stg_open_meteo__hourly_weather"} <= names
    database = db.execute("select current_database()").fetchone()[0]
    audited = f"postgres://{database}/audit/fct_daily_weather"
    assert materialized_by(flow_run_events(state, "prefect.asset.", until=audited), audited) == {"dbt"}
    assert db.execute("select count(*) from marts.fct_daily_weather").fetchone()[0] == 5

    db.execute(
        "create function raw.spoil() returns trigger language plpgsql as $$"
        " begin if new.location_id = 'ams' and extract(hour from new.observed_at at time zone 'UTC') = 12"
        " then new.temperature_2m := 500; end if; return new; end $$"
    )
    db.execute("create trigger spoil before insert on raw.hourly_weather for each row execute function raw.spoil()")

    failed = run(lookback_days=1)

    assert failed.is_failed()
    assert f"stg_hourly_weather_temperature_2m_range (1 rows on {DAY})" in failure_message(failed)


def test_a_warehouse_block_name_without_a_document_fails_naming_it(pipeline_env, monkeypatch):
    monkeypatch.delenv("PIPELINE_DATABASE_URL")
    monkeypatch.setenv("PIPELINE_WAREHOUSE_BLOCK", "no-such-connector")

    with pytest.raises(WarehouseNotConfigured, match="'no-such-connector'"):
        resolve_resources()
