"""Run dbt over a window through prefect-dbt, and say which nodes failed."""

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from dbt_common.events.base_types import EventLevel
from prefect.settings import get_current_settings
from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

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


@dataclass(frozen=True)
class DbtOutcome:
    """Counts by status (`pass`, `warn`, `fail`, `error`, `success`, `skipped`) and the failed nodes."""

    command: str
    counts: dict[str, int] = field(default_factory=dict)
    failures: tuple[NodeFailure, ...] = ()


class DbtCommandFailed(Exception):
    """A dbt command ended with failing nodes or could not run."""

    def __init__(self, message: str, outcome: DbtOutcome | None = None):
        super().__init__(message)
        self.outcome = outcome


def dbt_vars(window: Window) -> dict[str, str]:
    """The window as the vars the models and tests filter on: `[window_start, window_end)`."""
    return {"window_start": window.first.isoformat(), "window_end": (window.end.date()).isoformat()}


def dbt_args(command: str, window: Window) -> list[str]:
    """Arguments for `dbt <command>` restricted to `window`.

    Runs test the data only: unit tests check model logic against fixed inputs, so they
    belong in CI (`dbt test --select test_type:unit`), not in every scheduled run.
    """
    args = [command, "--vars", json.dumps(dbt_vars(window), sort_keys=True)]
    return args + ["--exclude-resource-type", "unit_test"] if command == "test" else args


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


def run_dbt(command: str, window: Window, dsn: str, project_dir: Path) -> DbtOutcome:
    """Invoke `dbt <command>` for `window`; raise DbtCommandFailed naming the failing nodes."""
    settings = PrefectDbtSettings(project_dir=project_dir, profiles_dir=project_dir, log_level=dbt_log_level())
    runner = PrefectDbtRunner(settings=settings, raise_on_failure=False)
    args = dbt_args(command, window)
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
    """Count node results by status and collect the failing ones."""
    counts: dict[str, int] = {}
    failures = []
    for node_result in results:
        status = str(getattr(node_result.status, "value", node_result.status))
        counts[status] = counts.get(status, 0) + 1
        if status in FAILING_STATUSES:
            failures.append(
                NodeFailure(
                    name=node_result.node.name,
                    status=status,
                    failures=node_result.failures,
                    message=_first_line(node_result.message or ""),
                )
            )
    return DbtOutcome(command, counts, tuple(failures))


def describe_failures(outcome: DbtOutcome) -> str:
    """One line naming each failing node, e.g. `dbt test: 2 failed: accepted_range_x (3 rows), …`."""
    names = ", ".join(
        f"{f.name} ({f.failures} rows)" if f.failures else f"{f.name} ({f.status})" for f in outcome.failures
    )
    return f"dbt {outcome.command}: {len(outcome.failures)} failed: {names}"


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else "no details"
