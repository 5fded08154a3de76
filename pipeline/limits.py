"""A flow run's time limit, read from the settings when the run starts."""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect.utilities.timeout import timeout

from pipeline.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")


class RunTimedOut(TimeoutError):
    """A run went on past its PIPELINE_*_TIMEOUT_SECONDS."""


def timed_by(field: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Bound each call of a flow function by the setting `field` (e.g. "daily_timeout_seconds").

    Not `@flow(timeout_seconds=...)`: a decorator's arguments are evaluated when the module is
    imported, and a worker's flow-run process imports it before any setting is read, so a
    deployment run would keep the default whatever the VM's env file says. Nor a flow built with
    `with_options` at import: anything importing the module would read the environment. Read
    here, on the first line of the run, the one setting reaches CLI runs and deployment runs alike.
    It raises a TimeoutError, which Prefect records as a Failed state named TimedOut.
    """
    variable = f"PIPELINE_{field.upper()}"

    def bound(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            seconds = float(getattr(Settings(), field))
            try:
                # Prefect's own scope: an alarm in the main thread, so a blocked socket read ends too.
                with timeout(seconds, timeout_exc_type=RunTimedOut):
                    return fn(*args, **kwargs)
            except RunTimedOut:
                raise RunTimedOut(f"the run exceeded {variable}={seconds:g} s") from None

        timed.time_limit = variable  # type: ignore[attr-defined]
        return timed

    return bound
