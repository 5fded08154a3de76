"""Background processes on this machine: start, record, wait for, signal and stop them, with their children."""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

from pipeline.settings import PROJECT_ROOT

STOP_TIMEOUT_SECONDS = 15.0
# A start time above this (2003 in epoch seconds, 30 years of uptime) is a wall-clock one.
_WALL_CLOCK_RECORD = 1e9


class ProcessError(Exception):
    """A background process could not be started or stopped."""


@dataclass(frozen=True)
class Process:
    """A background process, as recorded to stop it later (`pipeline up` keeps these in pids.json)."""

    name: str
    pid: int
    # Seconds from boot to the process's start (see `started_at`): tells our process from a later
    # one that reuses its PID.
    started_at: float
    log: str
    stop_signal: str = "SIGTERM"
    # Started as the leader of its own session: signal its whole process group.
    group: bool = True


def start_process(name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path = PROJECT_ROOT) -> Process:
    """Start `argv` in `cwd`, in the background as the leader of a new session, its output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with _sigint_not_ignored(), open(log_path, "ab") as log:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    return record(name, child.pid, str(log_path))


def record(name: str, pid: int, log: str, stop_signal: str = "SIGTERM", group: bool = True) -> Process:
    """The record of the running process `pid`, with the start time that tells it from a later one."""
    return Process(name=name, pid=pid, started_at=started_at(pid), log=log, stop_signal=stop_signal, group=group)


def started_at(pid: int) -> float:
    """Seconds from boot to the start of process `pid`, as the kernel counts them (psutil.NoSuchProcess if gone).

    Not psutil's `create_time()`: that adds the boot time, which Linux derives from the wall clock, so
    it moves by a second or more when NTP steps the clock, and a running process would no longer match
    its record: `down` and the tests' `stop` would leave it running.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise psutil.NoSuchProcess(pid) from None
    except OSError:  # no procfs (macOS): the wall-clock start time is the best there is
        return psutil.Process(pid).create_time()
    # Field 22, counted after the command name, which may itself hold spaces and parentheses.
    ticks = int(stat.rpartition(")")[2].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


def stop_process(process: Process, timeout: float = STOP_TIMEOUT_SECONDS) -> str:
    """Signal a recorded process (its group, if it leads one) and wait; SIGKILL what is left after `timeout`.

    The worker starts each flow run in a session of its own: those are found as its descendants.
    """
    if not is_running(process):
        return f"{process.name} (pid {process.pid}): not running"
    descendants = psutil.Process(process.pid).children(recursive=True)
    _signal(process, signal.Signals[process.stop_signal])
    if _wait_stopped(process, descendants, timeout):
        return f"{process.name} (pid {process.pid}): stopped"
    _signal(process, signal.SIGKILL)
    for child in descendants:
        with suppress(psutil.NoSuchProcess):
            child.kill()
    if not _wait_stopped(process, descendants, 5.0):
        raise ProcessError(f"{process.name} (pid {process.pid}) survived SIGKILL")
    return f"{process.name} (pid {process.pid}): killed after {timeout:g} s without stopping"


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything under it, as the OOM killer or a lost VM would."""
    leader = psutil.Process(pid)
    family = [leader, *leader.children(recursive=True)]
    for proc in family:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


def is_running(process: Process) -> bool:
    """Whether the recorded process is still alive, and is still the process we started."""
    try:
        proc = psutil.Process(process.pid)
        if process.started_at > _WALL_CLOCK_RECORD:
            # Recorded by an earlier version as a wall-clock time (a stack `up` before an upgrade).
            same = abs(proc.create_time() - process.started_at) < 1.0
        else:
            same = abs(started_at(process.pid) - process.started_at) < 0.01
        return same and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until(ready: Callable[[], bool], process: Process, timeout: float, what: str) -> None:
    """Poll `ready` until it holds; fail early, with the log's tail, if `process` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not is_running(process):
            raise ProcessError(f"{what} exited while starting; {process.log} ends: {tail(_read(process.log))}")
        if time.monotonic() > deadline:
            raise ProcessError(f"{what} was not ready after {timeout:g} s; see {process.log}")
        time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(text: str, lines: int = 8) -> str:
    """The last `lines` lines of a process's output, blank ones left out, joined on one line."""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def _signal(process: Process, signum: signal.Signals) -> None:
    try:
        if process.group:
            os.killpg(process.pid, signum)
        else:
            os.kill(process.pid, signum)
    except ProcessLookupError:
        pass


def _wait_stopped(process: Process, descendants: list[psutil.Process], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(process.pid)
        if not (
            is_running(process)
            or (process.group and _group_alive(process.pid))
            or any(_alive(child) for child in descendants)
        ):
            return True
        time.sleep(0.1)
    return False


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is still alive (zombies waiting to be reaped do not count)."""
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def _reap(pid: int) -> None:
    # A process started by this very process (tests, `up` then `down` in one session) must be
    # waited for, or it lingers as a zombie.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


@contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    # A shell starts `cmd &` with SIGINT ignored, children inherit that through exec, and the
    # Prefect worker then ignores SIGTERM too. A handler (unlike SIG_IGN) resets to default on exec.
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
