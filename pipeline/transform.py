"""Build and test a window with dbt in `audit`, say what failed, publish what passed."""

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from pipeline.defaults import OFFLINE_ENV
from pipeline.errors import first_line
from pipeline.warehouse import query
from pipeline.window import Window, consecutive_runs

# dbt is imported where it is used: importing it takes ~2.5 s, which `ParsedProject` spends in the
# background while a run extracts and loads, and which commands without a build never pay.
if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest
    from dbt_common.events.base_types import EventMsg

    from blocks.warehouse import WarehouseConnection

FAILING_STATUSES = {"error", "fail", "runtime error"}


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


def _dbt_environment(warehouse: "WarehouseConnection") -> dict[str, str]:
    return {**OFFLINE_ENV, **warehouse.dbt_environment()}


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


def _project_args(project_dir: Path) -> list[str]:
    return ["--project-dir", str(project_dir), "--profiles-dir", str(project_dir)]


class ParsedProject:
    """Import dbt and parse the project in a background thread, while the run extracts and loads.

    Parsing reads only the project's files (the window is in a table, not in --vars), so it
    can happen before the data is there; the build then starts from the parsed manifest
    instead of paying dbt's import and parse on the run's critical path. Any trouble here
    is left for the build to meet and report: it parses again when no manifest came of it.
    Use as a context manager, so the thread is always joined before the run ends.
    """

    def __init__(self, warehouse: "WarehouseConnection", project_dir: Path):
        self._manifest: Manifest | None = None
        self._thread = threading.Thread(
            target=self._parse, args=(warehouse, project_dir), name="dbt-parse", daemon=True
        )

    def __enter__(self) -> "ParsedProject":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._thread.join()

    def manifest(self) -> "Manifest | None":
        self._thread.join()
        return self._manifest

    def _parse(self, warehouse: "WarehouseConnection", project_dir: Path) -> None:
        try:
            from dbt.cli.main import dbtRunner

            with _environment(_dbt_environment(warehouse)):
                result = dbtRunner().invoke(["parse", "--no-write-json", *_project_args(project_dir)], log_level="none")
            self._manifest = result.result if result.success else None
        except Exception:  # the build parses again and reports what is wrong
            self._manifest = None


def build(
    warehouse: "WarehouseConnection",
    project_dir: Path,
    log: logging.Logger | logging.LoggerAdapter | None = None,
    parsed: ParsedProject | None = None,
) -> DbtOutcome:
    """`dbt build` of the window set by `set_window`; raise DbtCommandFailed naming the failing nodes and days.

    dbt runs in this process through its own `dbtRunner`, as one step: prefect-dbt's
    PrefectDbtRunner would record each of the build's ~50 nodes as a Prefect task run, which
    made the step take about twice a bare `dbt build` (BENCHMARKS.md). dbt's result lines
    (one per node, and anything it warns about) go to `log`, with secrets scrubbed as dbt's
    own log files scrub them; the whole debug log stays in `dbt_project/logs/dbt.log`.
    """
    from dbt.cli.main import dbtRunner

    command = "build"
    manifest = parsed.manifest() if parsed is not None else None
    callbacks = [_forward_to(log)] if log is not None else []
    with _environment(_dbt_environment(warehouse)):
        # The console stays quiet: what matters reaches `log` through the callback.
        result = dbtRunner(manifest=manifest, callbacks=callbacks).invoke(
            [*dbt_args(), *_project_args(project_dir)], log_level="none", use_colors=False
        )
    if result.exception is not None:
        raise DbtCommandFailed(f"dbt {command} could not run: {first_line(result.exception)}")
    outcome = summarise(command, getattr(result.result, "results", None) or [])
    if not result.success:
        if outcome.failures:
            with warehouse.connect(autocommit=True) as conn:
                outcome = dataclasses.replace(
                    outcome, failures=tuple(with_days(conn, failure) for failure in outcome.failures)
                )
            raise DbtCommandFailed(describe_failures(outcome), outcome)
        raise DbtCommandFailed(f"dbt {command} failed: no failing node reported", outcome)
    return outcome


# Left out of the run's log at INFO: per-node start lines and connection chatter.
_NOISY_EVENTS = {"LogStartLine", "NewConnection", "ConnectionUsed", "ConcurrencyLine", "HooksRunning"}
_LOG_LEVELS = {"debug": logging.DEBUG, "test": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING}


def _forward_to(log: logging.Logger | logging.LoggerAdapter) -> Callable[["EventMsg"], None]:
    """A dbt callback that logs each event `log` would keep, secrets scrubbed."""
    from dbt_common.exceptions.base import env_secrets, scrub_secrets

    def forward(event: "EventMsg") -> None:
        # Called from dbt's worker threads; loggers are thread-safe.
        severity = _LOG_LEVELS.get(event.info.level, logging.ERROR)
        if event.info.name in _NOISY_EVENTS or not event.info.msg or not log.isEnabledFor(severity):
            return
        log.log(severity, "dbt: %s", scrub_secrets(event.info.msg, env_secrets()))

    return forward


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
                    message=first_line(node_result.message or ""),
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
