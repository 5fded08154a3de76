"""Waiting for something another process or thread does, with a bound and a message that says what."""

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def poll_until(condition: Callable[[], T], timeout: float, interval: float, what: str | Callable[[], str]) -> T:
    """Call `condition` every `interval` s until it returns a truthy value, and return that value.

    Fails the test after `timeout` s, naming `what` (a callable is asked only then, so it can quote a
    log as it is at that moment) and the last value the condition returned.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout} s waiting for {described}; last value: {value!r}")
        time.sleep(interval)
