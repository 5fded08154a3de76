"""A flow run's time limit, read from the settings when the run starts."""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect.utilities.timeout import timeout

from blocks import run_resources

P = ParamSpec("P")
R = TypeVar("R")


class RunTimedOut(TimeoutError):
    """A run went on past its PIPELINE_*_TIMEOUT_SECONDS."""


def timed_by(field: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Bound each call of a flow function by the setting `field` (e.g. "daily_timeout_seconds").

    Not `@flow(timeout_seconds=...)`: decorator arguments are evaluated when the module is
    imported, so they can hold only a default, which a deployment run would keep whatever the worker's
    env file says. Reading the settings there, or building the entrypoint with `with_options` at
    module level, would read the environment in every process that imports the flow (the CLI,
    `prefect deploy`, tests), not when a run starts. Prefect enforces `timeout_seconds` with this
    same scope around the flow function's call (`FlowRunEngine.run_context`); entered here, on the
    function's first line, it takes the value the run's own settings hold, on every path. Those are the
    run's resources' (`run_resources`), resolved here once for the flow body and its state hooks.
    The TimeoutError it raises is what Prefect records as a Failed state named TimedOut.
    """
    variable = f"PIPELINE_{field.upper()}"

    def bound(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            seconds = float(getattr(run_resources().settings, field))
            try:
                # Prefect's own scope: an alarm in the main thread, so a blocked socket read ends too.
                with timeout(seconds, timeout_exc_type=RunTimedOut):
                    return fn(*args, **kwargs)
            except RunTimedOut:
                raise RunTimedOut(f"the run exceeded {variable}={seconds:g} s") from None

        timed.time_limit = variable  # type: ignore[attr-defined]
        return timed

    return bound
