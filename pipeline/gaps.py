"""Days the daily schedule should have loaded but did not, and the backfills that would load them."""

from dataclasses import dataclass
from datetime import date, timedelta

from pipeline.window import Window, consecutive_runs

# `pipeline gaps` looks this far back unless told where to start.
DEFAULT_DAYS = 30


def expected_window(since: date | None, today: date) -> Window:
    """The logical dates the schedule should have loaded by `today`: from `since` (default: 30 days) to yesterday."""
    yesterday = today - timedelta(days=1)
    return Window(since or yesterday - timedelta(days=DEFAULT_DAYS - 1), yesterday)


@dataclass(frozen=True)
class GapReport:
    """What `pipeline gaps` found: the days of `expected` without a complete load of its `locations` locations."""

    expected: Window
    locations: int
    missing: list[date]
    failed: list[date]
    incomplete: list[date]

    def __bool__(self) -> bool:
        return bool(self.missing or self.failed or self.incomplete)

    def backfills(self) -> list[str]:
        """One `pipeline backfill` per run of consecutive days, with the reprocess mode its days need."""
        commands = []
        failed, incomplete = set(self.failed), set(self.incomplete)
        for run in consecutive_runs(self.missing + self.failed + self.incomplete):
            days = set(run.days)
            reprocess = "failed" if days & failed else "incomplete" if days & incomplete else None
            commands.append(backfill_command(run, reprocess))
        return commands


def backfill_command(window: Window, reprocess: str | None = None) -> str:
    """The `pipeline backfill` that loads `window` (`reprocess`: the mode, None for the default)."""
    return f"pipeline backfill --start {window.first} --end {window.last}" + (
        f" --reprocess {reprocess}" if reprocess else ""
    )
