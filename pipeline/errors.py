"""How the pipeline says what went wrong: the failed step and its one-line reason."""

from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.window import Window


class StepFailed(Exception):
    """A step of the pipeline failed; later steps did not run."""

    def __init__(self, step: str, window: Window | None, cause: BaseException):
        self.step = step
        self.window = window
        self.cause = cause
        where = f" for {window}" if window else ""
        super().__init__(f"{step} failed{where}: {first_line(cause)}")


@contextmanager
def step(name: str, window: Window | None = None) -> Iterator[None]:
    """Name the step an exception escaped from, so the run's one-line reason says where it broke."""
    try:
        yield
    except StepFailed:
        raise
    except Exception as exc:
        raise StepFailed(name, window, exc) from exc


def first_line(value: object) -> str:
    """The first line of `value`'s text; for an exception without text, its type's name."""
    text = str(value).strip()
    if text:
        return text.splitlines()[0]
    return type(value).__name__ if isinstance(value, BaseException) else "no details"
