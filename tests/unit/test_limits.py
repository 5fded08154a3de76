import time

import pytest

from pipeline.limits import RunTimedOut, timed_by


@timed_by("daily_timeout_seconds")
def sleeps(seconds: float) -> str:
    # In short steps: under pytest-timeout's alarm handler Prefect's scope interrupts between calls.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return "done"


def test_timed_by_reads_the_setting_when_called_not_when_decorated(monkeypatch):
    monkeypatch.setenv("PIPELINE_DAILY_TIMEOUT_SECONDS", "0.2")

    started = time.monotonic()
    with pytest.raises(RunTimedOut, match=r"^the run exceeded PIPELINE_DAILY_TIMEOUT_SECONDS=0.2 s$"):
        sleeps(5)

    assert time.monotonic() - started < 2


def test_timed_by_returns_the_result_within_the_limit(monkeypatch):
    monkeypatch.setenv("PIPELINE_DAILY_TIMEOUT_SECONDS", "5")

    assert sleeps(0) == "done"


def test_timed_by_keeps_the_signature_prefect_reads_parameters_from():
    assert sleeps.__wrapped__.__name__ == "sleeps"
    assert sleeps.__annotations__ == {"seconds": float, "return": str}
