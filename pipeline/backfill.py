"""Backfill planning from the load ledger: which days to load, which to transform, in which chunks."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, NamedTuple

from pipeline.extract import call_weight
from pipeline.window import Window, chunk

Reprocess = Literal["missing", "failed", "all"]
MODES: tuple[Reprocess, ...] = ("missing", "failed", "all")


class DayStatus(NamedTuple):
    """A day's ledger entry: last attempt's status, whether it ever loaded, whether dbt has seen it."""

    status: str
    loaded: bool
    transformed: bool
    checksum: str | None = None


@dataclass(frozen=True)
class BackfillPlan:
    window: Window
    reprocess: Reprocess
    reasons: Mapping[date, str]
    load_days: tuple[date, ...]
    transform_days: tuple[date, ...]
    chunks: tuple[Window, ...]

    @property
    def dbt_window(self) -> Window | None:
        """One window over every day dbt must rebuild (days in between are rebuilt to the same rows)."""
        return Window(self.transform_days[0], self.transform_days[-1]) if self.transform_days else None

    def requests(self, locations: int, per_request: int) -> int:
        return len(self.chunks) * -(-locations // per_request)

    def api_calls(self, locations: int, per_request: int) -> int:
        """Calls as the public API counts them (per location, per started 14 days)."""
        batches = [per_request] * (locations // per_request) + (
            [locations % per_request] if locations % per_request else []
        )
        return sum(call_weight(size, len(c)) for c in self.chunks for size in batches)

    def expected_rows(self, locations: int) -> int:
        return len(self.load_days) * 24 * locations

    def describe(self, locations: int, per_request: int) -> str:
        """A human summary: what would happen and why."""
        counts: dict[str, int] = {}
        for reason in self.reasons.values():
            counts[reason] = counts.get(reason, 0) + 1
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or "nothing to do"
        return (
            f"backfill {self.window} (reprocess={self.reprocess}): {len(self.load_days)} of {len(self.window)} days "
            f"to load in {len(self.chunks)} chunks ({why}); {self.requests(locations, per_request)} requests, "
            f"{self.api_calls(locations, per_request)} API calls as counted by the public API, "
            f"{self.expected_rows(locations):,} rows expected; "
            f"dbt over {self.dbt_window or 'nothing'}"
        )


def plan_backfill(
    window: Window, ledger: Mapping[date, DayStatus], reprocess: Reprocess, chunk_days: int
) -> BackfillPlan:
    """Decide from the ledger what a backfill of `window` must do.

    `missing` loads days that never loaded successfully, `failed` adds days whose last
    attempt failed, `all` reloads every day. Days loaded but never transformed (a
    backfill killed before its dbt run) go to dbt without being downloaded again.
    """
    if reprocess not in MODES:
        raise ValueError(f"reprocess must be one of {', '.join(MODES)}, got {reprocess!r}")
    reasons: dict[date, str] = {}
    transform_only = []
    for day in window.days:
        entry = ledger.get(day)
        if reprocess == "all":
            reasons[day] = "reprocess all"
        elif entry is None or not entry.loaded:
            reasons[day] = "never loaded"
        elif reprocess == "failed" and entry.status == "failed":
            reasons[day] = "last attempt failed"
        elif not entry.transformed:
            transform_only.append(day)
    load_days = tuple(sorted(reasons))
    for day in transform_only:
        reasons[day] = "loaded, not yet transformed"
    return BackfillPlan(
        window=window,
        reprocess=reprocess,
        reasons=reasons,
        load_days=load_days,
        transform_days=tuple(sorted(reasons)),
        chunks=tuple(c for run in consecutive_runs(load_days) for c in chunk(run, chunk_days)),
    )


def consecutive_runs(days: Iterable[date]) -> list[Window]:
    """Sorted days grouped into windows of consecutive dates."""
    runs: list[Window] = []
    for day in sorted(days):
        if runs and runs[-1].last + timedelta(days=1) == day:
            runs[-1] = Window(runs[-1].first, day)
        else:
            runs.append(Window(day, day))
    return runs


def gaps(expected: Window, ledger: Mapping[date, DayStatus]) -> tuple[list[date], list[date]]:
    """Days of `expected` with no successful load, and days whose last attempt failed."""
    missing = [day for day in expected.days if day not in ledger or not ledger[day].loaded]
    failed = [day for day in expected.days if day in ledger and ledger[day].status == "failed"]
    return missing, failed
