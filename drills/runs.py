"""Running the pipeline's commands as real processes against the drill's cluster."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drills.cluster import Cluster, Warehouse
from drills.report import Outcome
from pipeline.window import Window

BIN = Path(sys.executable).parent
MAX_RUNS = 6
RUN_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Size:
    locations: int
    per_request: int
    range: Window
    soak: Window


@dataclass
class Run:
    args: list[str]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def reason(self) -> str:
        """The line the pipeline printed to say why it failed."""
        lines = [
            line for line in self.output.splitlines() if line.startswith(("pipeline", "usage:")) or ": error:" in line
        ]
        return (lines[-1] if lines else self.output.strip().splitlines()[-1] if self.output.strip() else "")[:400]


@dataclass
class Drill:
    """What every scenario works with: the cluster, the drill's size and seed, and the reference's checksums."""

    cluster: Cluster
    size: Size
    seed: int
    expected: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.work = self.cluster.work
        self.source = self.cluster.source
        self.locations = self.work / "locations.csv"
        self.locations.write_text(locations_csv(self.size.locations), encoding="utf-8")

    def env(self, db: Warehouse, **overrides: str) -> dict[str, str]:
        base = {name: value for name, value in os.environ.items() if not name.startswith("PIPELINE_")}
        return (
            self.cluster.env(base)
            | {
                "PIPELINE_DATABASE_URL": db.dsn,
                "PIPELINE_SOURCE_URL": self.source.url,
                "PIPELINE_SOURCE_RATE_LIMIT": "",
                "PIPELINE_LOCATIONS_FILE": str(self.locations),
                "PIPELINE_LOCATIONS_PER_REQUEST": str(self.size.per_request),
                "PIPELINE_BACKFILL_CHUNK_DAYS": "7",
                "PIPELINE_FETCH_RETRIES": "8",
                "PIPELINE_FETCH_RETRY_BASE_SECONDS": "0.05",
                "PIPELINE_HTTP_TIMEOUT_SECONDS": "2",
                "PIPELINE_DATA_DIR": str(self.work / "unused"),
                "PREFECT_LOGGING_LEVEL": "WARNING",
            }
            | overrides
        )

    def spawn(self, db: Warehouse, args: list[str], **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            [str(BIN / "pipeline"), *args],
            env=self.env(db, **env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def run(self, db: Warehouse, args: list[str], **env: str) -> Run:
        return finish(self.spawn(db, args, **env), args)

    def converge(self, db: Warehouse, args: list[str], outcome: Outcome, **env: str) -> Run:
        """Run `args` until it succeeds, as an operator (or a Prefect retry) would; counts the runs."""
        for _ in range(MAX_RUNS):
            run = self.run(db, args, **env)
            outcome.runs += 1
            if run.ok:
                return run
        outcome.note = f"still failing after {MAX_RUNS} runs: {run.reason}"
        return run


def finish(process: subprocess.Popen, args: list[str]) -> Run:
    output, _ = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
    return Run(args, process.returncode, output)


def wait_for(ready: Callable[[], bool], ended: Callable[[], bool]) -> bool:
    """Poll until `ready()` holds; False if `ended()` holds first."""
    while not ended():
        if ready():
            return True
        time.sleep(0.001)
    return False


def exited(process: subprocess.Popen) -> Callable[[], bool]:
    """Whether `process` has ended, asked the way `wait_for` asks."""
    return lambda: process.poll() is not None


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], delay: float = 0.0) -> bool:
    """SIGKILL the run's whole process group once `ready()` holds; False if it ended first."""
    if wait_for(ready, exited(process)):
        time.sleep(delay)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return True
    process.communicate()
    return False


def innermost(reason: str) -> str:
    """The root cause in "extract failed for …: 1 of 3 chunks failed, first: load failed for …: <cause>"."""
    return re.sub(r"^(pipeline \w+ failed: )?[\w ]+? failed for [0-9.-]+: ", "", reason.split("first: ")[-1])


def backfill_args(window: Window) -> list[str]:
    return ["backfill", "--start", window.first.isoformat(), "--end", window.last.isoformat(), "--yes"]


def locations_csv(count: int) -> str:
    lines = ["location_id,name,latitude,longitude"]
    for i in range(count):
        lines.append(f"loc{i:03d},Location {i},{-60 + (i * 7.919) % 130:.4f},{-180 + (i * 13.37) % 360:.4f}")
    return "\n".join(lines) + "\n"
