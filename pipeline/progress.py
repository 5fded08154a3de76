"""Backfill progress: a Prefect progress artifact, log lines, and a bar when run in a terminal."""

import sys
import time
from datetime import timedelta
from types import TracebackType

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging import get_run_logger
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn


def progress_line(days_done: int, days_total: int, rows: int, elapsed: float) -> str:
    """`backfill 120/365 days | 2,880,000 rows | 240,000 rows/s | ETA 0:00:30`."""
    rate = rows / elapsed if elapsed > 0 else 0.0
    remaining = (days_total - days_done) * (elapsed / days_done) if days_done else None
    eta = str(timedelta(seconds=round(remaining))) if remaining is not None else "?"
    return f"backfill {days_done}/{days_total} days | {rows:,} rows | {rate:,.0f} rows/s | ETA {eta}"


def terminal_bar(console: Console) -> Progress:
    """`backfill ━━━━━━━━╺━━━━━━━━━━━ 120/365 days | 2,880,000 rows | 240,000 rows/s | ETA 0:00:30`."""
    return Progress(
        TextColumn("backfill"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("days | {task.fields[rows]:,} rows | {task.fields[rate]:,.0f} rows/s | ETA"),
        TimeRemainingColumn(),
        console=console,
        # Redrawn when a chunk lands, as the log line is written: no thread, and Prefect's own
        # console handler keeps sys.stderr to itself.
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )


class BackfillProgress:
    """Counts days and rows as chunks finish and reports them wherever someone may be watching.

    Use it as a context manager: the terminal bar is closed however the backfill ends.
    """

    def __init__(self, days_total: int):
        self.days_total = days_total
        self.days_done = 0
        self.rows = 0
        self.started = time.monotonic()
        self.logger = get_run_logger()
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        if sys.stderr.isatty():
            self.bar = terminal_bar(Console(file=sys.stderr))
            self.task = self.bar.add_task("backfill", total=days_total, rows=0, rate=0.0)
            self.bar.start()
        self.artifact_id = create_progress_artifact(0.0, key="backfill-progress", description="days loaded")

    def __enter__(self) -> "BackfillProgress":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def advance(self, days: int, rows: int) -> None:
        self.days_done += days
        self.rows += rows
        elapsed = time.monotonic() - self.started
        line = progress_line(self.days_done, self.days_total, self.rows, elapsed)
        fraction = self.days_done / self.days_total if self.days_total else 1.0
        update_progress_artifact(self.artifact_id, round(100 * fraction, 1), description=line)
        self.logger.info(line)
        if self.bar is not None and self.task is not None:
            rate = self.rows / elapsed if elapsed > 0 else 0.0
            self.bar.update(self.task, completed=self.days_done, rows=self.rows, rate=rate)
            self.bar.refresh()
            if self.days_done >= self.days_total:
                self.close()

    def close(self) -> None:
        """End the terminal bar on its own line and give the cursor back."""
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
