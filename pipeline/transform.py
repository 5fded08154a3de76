"""Build and test a window with dbt in `audit` through prefect-dbt, say what failed, publish what passed."""

import dataclasses
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg
from dbt_common.events.base_types import EventLevel
from prefect.settings import get_current_settings
from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings
from psycopg import sql

from pipeline.backfill import consecutive_runs
from pipeline.warehouse import query
from pipeline.window import Window

FAILING_STATUSES = {"error", "fail", "runtime error"}
_DBT_LEVELS = {
    "DEBUG": EventLevel.DEBUG,
    "INFO": EventLevel.INFO,
    "WARNING": EventLevel.WARN,
    "ERROR": EventLevel.ERROR,
    "CRITICAL": EventLevel.ERROR,
}


@dataclass(frozen=True)
class NodeFailure:
    name: str
    status: str
    failures: int | None
    message: str
    # Where a failing test stored its rows (`audit`, view name), and the UTC days they fall on.
    relation: tuple[str, str] | None = None
    days: tuple[date, ...] = ()


@dataclass(frozen=True)
class DbtOutcome:
    """Test counts by status (`pass`, `warn`, `fail`, `error`, `skipped`), model counts, the failed nodes."""

    command: str
    counts: dict[str, int] = field(default_factory=dict)
    failures: tuple[NodeFailure, ...] = ()
    model_counts: dict[str, int] = field(default_factory=dict)


class DbtCommandFailed(Exception):
    """A dbt command ended with failing nodes or could not run."""

    def __init__(self, message: str, outcome: DbtOutcome | None = None):
        super().__init__(message)
        self.outcome = outcome


def dbt_args() -> list[str]:
    """Arguments for the one `dbt build` of a run: the same every run, so dbt's partial parsing holds.

    The window is not among them (models read it from ops.transform_window): any change
    to --vars makes dbt 1.11 re-parse the whole project. Runs test the data only: unit
    tests check model logic against fixed inputs, so they belong in CI
    (`dbt test --select test_type:unit`), not in every scheduled run.
    """
    return ["build", "--exclude-resource-type", "unit_test"]


def window_params(window: Window) -> dict[str, date]:
    """The window as UTC days [first_day, end_day), the bounds dbt and publishing filter on."""
    return {"first_day": window.first, "end_day": window.end.date()}


def set_window(conn: psycopg.Connection, window: Window) -> None:
    """Point the next dbt build at `window` (committed, so dbt's own connections see it)."""
    with conn.transaction():
        conn.execute(query("set_transform_window"), window_params(window))


def publish(conn: psycopg.Connection, window: Window) -> None:
    """Copy the window's audited facts and the dimension into `marts`, in one short transaction.

    Readers of `marts` see the previous window until the commit, then the new one whole.
    """
    with conn.transaction():
        conn.execute(query("publish_delete_facts"), window_params(window))
        conn.execute(query("publish_insert_facts"), window_params(window))
        conn.execute(query("publish_locations"))


def profile_env(dsn: str) -> dict[str, str]:
    """The environment `dbt_project/profiles.yml` reads, from a libpq DSN.

    The password goes in a DBT_ENV_SECRET_ variable, which dbt scrubs from its logs. The DSN's
    `options` (the run's lock and statement timeouts) go in PGOPTIONS: dbt-postgres's profile has
    no field for them, and libpq reads that variable for every connection dbt opens.
    """
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    env = {
        "PIPELINE_DBT_HOST": str(info.get("host") or "localhost"),
        "PIPELINE_DBT_PORT": str(info.get("port") or 5432),
        "PIPELINE_DBT_USER": str(info.get("user") or "postgres"),
        "PIPELINE_DBT_DBNAME": str(info.get("dbname") or info.get("user") or "postgres"),
        "DBT_ENV_SECRET_PASSWORD": str(info.get("password") or ""),
    }
    if info.get("options"):
        env["PGOPTIONS"] = str(info["options"])
    return env


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    # dbt runs in this process and reads its profile's env_var() calls from os.environ.
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def build(dsn: str, project_dir: Path) -> DbtOutcome:
    """`dbt build` of the window set by `set_window`; raise DbtCommandFailed naming the failing nodes and days."""
    command = "build"
    settings = PrefectDbtSettings(project_dir=project_dir, profiles_dir=project_dir, log_level=dbt_log_level())
    runner = PrefectDbtRunner(settings=settings, raise_on_failure=False)
    args = dbt_args()
    threads_before = set(threading.enumerate())
    with _environment({"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **profile_env(dsn)}):
        try:
            result = runner.invoke(args)
        except ValueError as exc:  # prefect-dbt raises this when dbt itself could not run
            raise DbtCommandFailed(f"dbt {command} could not run: {_first_line(exc)}") from None
        finally:
            _join_node_threads(threads_before)
    outcome = summarise(command, getattr(result.result, "results", None) or [])
    if not result.success:
        if outcome.failures:
            with psycopg.connect(dsn, autocommit=True) as conn:
                outcome = dataclasses.replace(
                    outcome, failures=tuple(with_days(conn, failure) for failure in outcome.failures)
                )
            raise DbtCommandFailed(describe_failures(outcome), outcome)
        raise DbtCommandFailed(f"dbt {command} failed: {_first_line(result.exception or 'no details')}", outcome)
    return outcome


def _join_node_threads(threads_before: set[threading.Thread], timeout: float = 60.0) -> None:
    # prefect-dbt reports each dbt node as a Prefect task from a daemon thread that it
    # never joins: left running, those tasks can lose their final state, and a process
    # exiting meanwhile can abort ("FATAL: exception not rethrown", exit code 134).
    for thread in set(threading.enumerate()) - threads_before:
        if thread.daemon and thread.name.endswith("(run_task)"):
            thread.join(timeout)


def dbt_log_level() -> EventLevel:
    """Prefect's logging level as dbt's: prefect-dbt passes "warning" through, which dbt rejects."""
    level = str(get_current_settings().logging.level).upper()
    return _DBT_LEVELS.get(level, EventLevel.INFO)


def summarise(command: str, results: list) -> DbtOutcome:
    """Count test and model results by status and collect the failing nodes."""
    counts: dict[str, int] = {}
    model_counts: dict[str, int] = {}
    failures = []
    for node_result in results:
        status = str(getattr(node_result.status, "value", node_result.status))
        node = node_result.node
        is_test = str(getattr(node.resource_type, "value", node.resource_type)) == "test"
        tally = counts if is_test else model_counts
        tally[status] = tally.get(status, 0) + 1
        if status in FAILING_STATUSES:
            failures.append(
                NodeFailure(
                    name=node.name,
                    status=status,
                    failures=node_result.failures,
                    message=_first_line(node_result.message or ""),
                    relation=(node.schema, node.alias) if is_test and status == "fail" else None,
                )
            )
    return DbtOutcome(command, counts, tuple(failures), model_counts)


def with_days(conn: psycopg.Connection, failure: NodeFailure) -> NodeFailure:
    """The failure with the UTC days of the rows its test stored, when they have a date column."""
    if failure.relation is None:
        return failure
    schema, name = failure.relation
    columns = {row[0] for row in conn.execute(query("failure_columns"), {"schema": schema, "name": name})}
    if "weather_date" in columns:
        day = sql.Identifier("weather_date")
    elif "observed_at" in columns:
        day = sql.SQL("({} at time zone 'utc')::date").format(sql.Identifier("observed_at"))
    else:
        return failure
    statement = query("failure_days").format(day=day, relation=sql.Identifier(schema, name))
    return dataclasses.replace(failure, days=tuple(row[0] for row in conn.execute(statement)))


def failing_days(outcome: DbtOutcome | None) -> list[date]:
    """Every day named by a failing test, sorted."""
    return sorted({day for failure in (outcome.failures if outcome else ()) for day in failure.days})


def describe_failures(outcome: DbtOutcome) -> str:
    """One line naming each failing node and its days, e.g. `dbt build: 1 failed: x_range (3 rows on 2024-03-09)`."""
    return f"dbt {outcome.command}: {len(outcome.failures)} failed: " + ", ".join(map(_describe, outcome.failures))


def _describe(failure: NodeFailure) -> str:
    what = f"{failure.failures} rows" if failure.failures else failure.status
    if failure.days:
        shown = ", ".join(str(run) for run in consecutive_runs(failure.days))
        what += f" on {shown}"
    return f"{failure.name} ({what})"


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else "no details"
