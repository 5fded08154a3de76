"""Build and test a window with dbt in `audit`, say what failed, publish what passed."""

import dataclasses
import json
import logging
import os
import tempfile
import threading
import time
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

    from blocks.warehouse import Warehouse

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


def profile(warehouse: "Warehouse") -> dict:
    """The contents of the profiles.yml a run gives dbt: dbt_project's `weather` profile, aimed at `warehouse`."""
    return {"weather": {"target": "prod", "outputs": {"prod": warehouse.dbt_target()}}}


@contextmanager
def profiles_dir(warehouse: "Warehouse") -> Iterator[Path]:
    """A private directory (0700) holding the run's profiles.yml (0600), removed on exit.

    The password is in that file only: not in the environment, where every child process would
    inherit it, nor in a log (the file is never logged; dbt's lines are scrubbed of it).
    """
    with tempfile.TemporaryDirectory(prefix="weather-dbt-") as folder:
        path = Path(folder) / "profiles.yml"
        # JSON is YAML; values are written out literally, so a password with `{{` is no template.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(_literal(profile(warehouse)), file)
        yield Path(folder)


def _literal(value):
    # dbt renders every string of a profile as Jinja; a raw block keeps one with braces as it is.
    if isinstance(value, dict):
        return {key: _literal(item) for key, item in value.items()}
    if isinstance(value, str) and ("{" in value or "%" in value):
        return "{% raw %}" + value + "{% endraw %}"
    return value


def dbt_environment(warehouse: "Warehouse") -> dict[str, str]:
    """The environment a dbt *process* gets beside its parent's: no secret, the offline switches, and
    PGOPTIONS with the run's session timeouts."""
    return {**OFFLINE_ENV, **_libpq_environment(warehouse)}


def _libpq_environment(warehouse: "Warehouse") -> dict[str, str]:
    # dbt-postgres's profile has no field for libpq `options`, and its connections are opened by
    # psycopg2 inside dbt, so libpq's PGOPTIONS is the one way to give each of them the timeouts.
    options = warehouse.options()
    return {"PGOPTIONS": options} if options else {}


# Everything else dbt is told per invocation; these are its flags that would otherwise come from the environment.
INVOKE_FLAGS = {"send_anonymous_usage_stats": False}
_environment_lock = threading.Lock()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in the process environment for the duration, then what was there before.

    For libpq alone: dbt runs in this process (dbtRunner has no env argument) and libpq reads PGOPTIONS
    from the process environment when dbt's psycopg2 connects. The lock keeps two scopes (a parse in
    the background, a build) from restoring each other's values.
    """
    with _environment_lock:
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


def _project_args(project_dir: Path, profiles: Path) -> list[str]:
    return ["--project-dir", str(project_dir), "--profiles-dir", str(profiles)]


def dbt_event_level(prefect_level: str):
    """dbt's EventLevel for a Prefect logging level name: prefect-dbt's own mapping fails on `WARNING`."""
    from dbt_common.events.base_types import EventLevel

    names = {"debug": "debug", "info": "info", "warning": "warn", "warn": "warn", "error": "error"}
    return EventLevel(names.get(prefect_level.strip().lower(), "error"))


class ParsedProject:
    """Import dbt and parse the project in a background thread, while the run extracts and loads.

    Parsing reads only the project's files (the window is in a table, not in --vars), so it
    can happen before the data is there; the build then starts from the parsed manifest
    instead of paying dbt's import and parse on the run's critical path. Any trouble here
    is left for the build to meet and report: it parses again when no manifest came of it.
    Use as a context manager, so the thread is always joined before the run ends.
    """

    def __init__(self, warehouse: "Warehouse", project_dir: Path):
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

    def _parse(self, warehouse: "Warehouse", project_dir: Path) -> None:
        try:
            self._manifest = parse(warehouse, project_dir)
            # The asset events' naming, imported here rather than after the build.
            import prefect_dbt.core.runner  # noqa: F401
        except Exception:  # the build parses again and reports what is wrong
            self._manifest = None


def parse(warehouse: "Warehouse", project_dir: Path) -> "Manifest | None":
    """The project's manifest, parsed in this process without writing it out; None if dbt cannot parse it."""
    from dbt.cli.main import dbtRunner

    with profiles_dir(warehouse) as profiles, _environment(_libpq_environment(warehouse)):
        result = dbtRunner().invoke(
            ["parse", "--no-write-json", *_project_args(project_dir, profiles)], log_level="none", **INVOKE_FLAGS
        )
    return result.result if result.success else None


def build(
    warehouse: "Warehouse",
    project_dir: Path,
    log: logging.Logger | logging.LoggerAdapter | None = None,
    parsed: ParsedProject | None = None,
    emit_assets: bool = True,
) -> DbtOutcome:
    """`dbt build` of the window set by `set_window`; raise DbtCommandFailed naming the failing nodes and days.

    dbt runs in this process through its own `dbtRunner`, as one step, from the manifest parsed
    while the run ingested. Then each model and seed it built is sent as a Prefect asset event
    with prefect-dbt's keys and upstream assets (`emit_assets`), as PrefectDbtRunner would, without
    its task per node (~3× the step, BENCHMARKS.md; `build_with_prefect_dbt` is that way). dbt's
    result lines go to `log`, scrubbed of secrets; the debug log stays in `dbt_project/logs/dbt.log`.
    """
    from dbt.cli.main import dbtRunner

    manifest = parsed.manifest() if parsed is not None else None
    if manifest is None:
        manifest = parse(warehouse, project_dir)
    callbacks = [_forward_to(log, warehouse)] if log is not None else []
    with profiles_dir(warehouse) as profiles, _environment(_libpq_environment(warehouse)):
        # The console stays quiet: what matters reaches `log` through the callback.
        result = dbtRunner(manifest=manifest, callbacks=callbacks).invoke(
            [*dbt_args(), *_project_args(project_dir, profiles)], log_level="none", use_colors=False, **INVOKE_FLAGS
        )
    if result.exception is not None:
        raise DbtCommandFailed(f"dbt build could not run: {first_line(result.exception)}")
    results = getattr(result.result, "results", None) or []
    if emit_assets and manifest is not None:
        from pipeline import assets

        started = time.perf_counter()
        sent = assets.emit(assets.dbt_materializations(manifest, results))
        if log is not None:
            log.info("dbt: %d asset events sent in %.1f ms", sent, (time.perf_counter() - started) * 1000)
    return _outcome(warehouse, results, result.success)


def build_with_prefect_dbt(warehouse: "Warehouse", project_dir: Path, prefect_log_level: str) -> DbtOutcome:
    """The same build through prefect-dbt's PrefectDbtRunner: a Prefect task (and asset) per dbt node.

    It parses the project again and logs through each node's task; failing tests fail it as `build` does.
    """
    from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

    with profiles_dir(warehouse) as profiles, _environment(_libpq_environment(warehouse)):
        settings = PrefectDbtSettings(
            project_dir=project_dir, profiles_dir=profiles, log_level=dbt_event_level(prefect_log_level)
        )
        running = set(threading.enumerate())
        try:
            result = PrefectDbtRunner(settings=settings, raise_on_failure=False).invoke(dbt_args(), **INVOKE_FLAGS)
        except ValueError as exc:  # dbt could not run at all
            raise DbtCommandFailed(f"dbt build could not run: {first_line(exc)}") from None
        finally:
            _join_node_tasks(running, NODE_TASKS_JOIN_SECONDS)
    return _outcome(warehouse, getattr(result.result, "results", None) or [], result.success)


# PrefectDbtRunner ends each node's task run in a daemon thread it never joins: a `pipeline run`
# process exiting right after the flow cut them off mid-report ("can't register atexit after shutdown").
NODE_TASKS_JOIN_SECONDS = 60.0


def _join_node_tasks(running: set[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in set(threading.enumerate()) - running:
        if thread.daemon and thread.name.endswith("(run_task)"):
            thread.join(max(0.0, deadline - time.monotonic()))


def _outcome(warehouse: "Warehouse", results: list, success: bool) -> DbtOutcome:
    outcome = summarise(results)
    if not success:
        if outcome.failures:
            with warehouse.connect(autocommit=True) as conn:
                outcome = dataclasses.replace(
                    outcome, failures=tuple(with_days(conn, failure) for failure in outcome.failures)
                )
            raise DbtCommandFailed(describe_failures(outcome), outcome)
        raise DbtCommandFailed("dbt build failed: no failing node reported", outcome)
    return outcome


# Left out of the run's log at INFO: per-node start lines and connection chatter.
_NOISY_EVENTS = {"LogStartLine", "NewConnection", "ConnectionUsed", "ConcurrencyLine", "HooksRunning"}
_LOG_LEVELS = {"debug": logging.DEBUG, "test": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING}


def _forward_to(log: logging.Logger | logging.LoggerAdapter, warehouse: "Warehouse") -> Callable[["EventMsg"], None]:
    """A dbt callback that logs each event `log` would keep, secrets scrubbed."""
    from dbt_common.exceptions.base import env_secrets, scrub_secrets

    secrets = [secret for secret in (warehouse.url.password, *env_secrets()) if secret]

    def forward(event: "EventMsg") -> None:
        # Called from dbt's worker threads; loggers are thread-safe.
        severity = _LOG_LEVELS.get(event.info.level, logging.ERROR)
        if event.info.name in _NOISY_EVENTS or not event.info.msg or not log.isEnabledFor(severity):
            return
        log.log(severity, "dbt: %s", scrub_secrets(event.info.msg, secrets))

    return forward


def summarise(results: list) -> DbtOutcome:
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
    return DbtOutcome(counts, tuple(failures), model_counts)


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
    return f"dbt build: {len(outcome.failures)} failed: " + ", ".join(map(_describe, outcome.failures))


def _describe(failure: NodeFailure) -> str:
    what = f"{failure.failures} rows" if failure.failures else failure.status
    if failure.days:
        shown = ", ".join(str(run) for run in consecutive_runs(failure.days))
        what += f" on {shown}"
    return f"{failure.name} ({what})"
