import dataclasses
import sys

import psutil
import pytest

from pipeline import processes


@pytest.fixture
def sleeper(tmp_path):
    process = processes.start_process(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path / "log"
    )
    yield process
    if processes.is_running(process):
        processes.kill_tree(process.pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the boot time that moves is Linux's")
def test_a_recorded_process_is_still_found_and_stopped_after_the_clock_is_stepped(sleeper, monkeypatch):
    # Linux derives the boot time from the wall clock: an NTP step moves it, and psutil's
    # create_time() with it. The test's stand-in for the step is psutil reading a boot time 2 s later.
    booted = psutil.boot_time()
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: booted + 2.0)

    assert processes.is_running(sleeper)
    assert processes.stop_process(sleeper, timeout=5) == f"sleeper (pid {sleeper.pid}): stopped"
    assert not processes.is_running(sleeper)


def test_a_later_process_under_the_same_pid_is_not_the_recorded_one(sleeper):
    assert not processes.is_running(dataclasses.replace(sleeper, started_at=sleeper.started_at - 1.0))


def test_a_record_in_wall_clock_time_from_an_earlier_version_still_matches(sleeper):
    legacy = dataclasses.replace(sleeper, started_at=psutil.Process(sleeper.pid).create_time())

    assert processes.is_running(legacy)
    assert not processes.is_running(dataclasses.replace(legacy, started_at=legacy.started_at - 5.0))
