"""Backfill progress: a Prefect progress artifact, log lines, and a bar when run in a terminal."""

import sys
import time
from datetime import timedelta

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging import get_run_logger


def progress_line(days_done: int, days_total: int, rows: int, elapsed: float) -> str:
    """`backfill 120/365 days | 2,880,000 rows | 240,000 rows/s | ETA 0:00:30`."""
    rate = rows / elapsed if elapsed > 0 else 0.0
    remaining = (days_total - days_done) * (elapsed / days_done) if days_done else None
    eta = str(timedelta(seconds=round(remaining))) if remaining is not None else "?"
    return f"backfill {days_done}/{days_total} days | {rows:,} rows | {rate:,.0f} rows/s | ETA {eta}"


def bar(fraction: float, width: int = 30) -> str:
    filled = round(fraction * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class BackfillProgress:
    """Counts days and rows as chunks finish and reports them wherever someone may be watching."""

    def __init__(self, days_total: int):
        self.days_total = days_total
        self.days_done = 0
        self.rows = 0
        self.started = time.monotonic()
        self.logger = get_run_logger()
        self.tty = sys.stderr.isatty()
        self.artifact_id = create_progress_artifact(0.0, key="backfill-progress", description="days loaded")

    def advance(self, days: int, rows: int) -> None:
        self.days_done += days
        self.rows += rows
        line = progress_line(self.days_done, self.days_total, self.rows, time.monotonic() - self.started)
        fraction = self.days_done / self.days_total if self.days_total else 1.0
        update_progress_artifact(self.artifact_id, round(100 * fraction, 1), description=line)
        self.logger.info(line)
        if self.tty:
            sys.stderr.write(f"\r{bar(fraction)} {line}\033[K")
            if self.days_done >= self.days_total:
                sys.stderr.write("\n")
            sys.stderr.flush()
