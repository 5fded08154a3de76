"""Backfill planning from the load ledger: which days to load, which to transform, in which chunks."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Literal, NamedTuple, get_args

from pipeline.locations import Location
from pipeline.window import Window, chunk, consecutive_runs

if TYPE_CHECKING:  # the CLI reads MODES before anything imports psycopg
    from pipeline.ledger import DayStatus

Reprocess = Literal["missing", "failed", "incomplete", "all", "transform"]
MODES: tuple[Reprocess, ...] = get_args(Reprocess)


@dataclass(frozen=True)
class Chunk:
    """A slice of a backfill loaded as one: its days, and the only locations it fetches.

    `location_ids` is None for every location in the file, else the locations added since
    the chunk's days were loaded.
    """

    days: Window
    location_ids: tuple[str, ...] | None = None

    def size(self, locations: int) -> int:
        """How many locations the chunk fetches when the file holds `locations`."""
        return locations if self.location_ids is None else len(self.location_ids)

    def fetched(self, locations: tuple[Location, ...]) -> tuple[Location, ...]:
        """Those of `locations` the chunk fetches."""
        if self.location_ids is None:
            return locations
        wanted = set(self.location_ids)
        return tuple(location for location in locations if location.location_id in wanted)

    def __str__(self) -> str:
        return str(self.days)


@dataclass(frozen=True)
class BackfillPlan:
    window: Window
    reprocess: Reprocess
    reasons: Mapping[date, str]
    load_days: tuple[date, ...]
    transform_days: tuple[date, ...]
    chunks: tuple[Chunk, ...]

    @property
    def dbt_window(self) -> Window | None:
        """One window over every day dbt must rebuild (days in between are rebuilt to the same rows)."""
        return Window(self.transform_days[0], self.transform_days[-1]) if self.transform_days else None

    def requests(self, locations: int, per_request: int) -> int:
        return sum(-(-c.size(locations) // per_request) for c in self.chunks)

    def expected_rows(self, locations: int) -> int:
        return sum(len(c.days) * 24 * c.size(locations) for c in self.chunks)

    def describe(self, locations: int, per_request: int, api_calls: int) -> str:
        """A human summary: what would happen and why (`api_calls`: the chunks' cost, `quota.chunk_calls`)."""
        counts: dict[str, int] = {}
        for reason in self.reasons.values():
            counts[reason] = counts.get(reason, 0) + 1
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or "nothing to do"
        return (
            f"backfill {self.window} (reprocess={self.reprocess}): {len(self.load_days)} of {len(self.window)} days "
            f"to load in {len(self.chunks)} chunks ({why}); {self.requests(locations, per_request)} requests, "
            f"{api_calls} API calls as counted by the public API, "
            f"{self.expected_rows(locations):,} rows expected; "
            f"dbt over {self.dbt_window or 'nothing'}"
        )


def plan_backfill(
    window: Window,
    ledger: Mapping[date, "DayStatus"],
    reprocess: Reprocess,
    chunk_days: int,
    active: Iterable[str] = (),
) -> BackfillPlan:
    """Decide from the ledger what a backfill of `window` must do.

    `missing` loads days that never loaded successfully, and for days that did, the
    `active` locations they hold no rows for (added to the file later) — those alone.
    `failed` adds days whose last attempt failed, `incomplete` days with missing values,
    `all` reloads every day, `transform` loads nothing and rebuilds every day with dbt.
    Days loaded but never transformed (a backfill killed before its dbt run, a build
    whose tests failed) go to dbt without being downloaded again.
    """
    if reprocess not in MODES:
        raise ValueError(f"reprocess must be one of {', '.join(MODES)}, got {reprocess!r}")
    active = frozenset(active)
    reasons: dict[date, str] = {}
    subsets: dict[date, tuple[str, ...] | None] = {}
    transform_only = []
    for day in window.days:
        entry = ledger.get(day)
        absent = active - entry.locations if entry is not None and entry.locations is not None else frozenset()
        if reprocess == "transform":
            transform_only.append(day)
        elif reprocess == "all":
            reasons[day] = "reprocess all"
        elif entry is None or not entry.loaded:
            reasons[day] = "never loaded"
        elif reprocess == "failed" and entry.status == "failed":
            reasons[day] = "last attempt failed"
        elif reprocess == "incomplete" and entry.status == "incomplete":
            reasons[day] = "incomplete"
        elif absent:
            reasons[day] = "locations missing"
            subsets[day] = tuple(sorted(absent))
        elif not entry.transformed:
            transform_only.append(day)
    load_days = tuple(sorted(reasons))
    for day in transform_only:
        reasons[day] = "reprocess transform" if reprocess == "transform" else "loaded, not yet transformed"
    # Consecutive days that fetch the same locations: one request covers each run.
    chunks = tuple(
        Chunk(days, subsets.get(run.first))
        for run in consecutive_runs(load_days, key=subsets.get)
        for days in chunk(run, chunk_days)
    )
    return BackfillPlan(
        window=window,
        reprocess=reprocess,
        reasons=reasons,
        load_days=load_days,
        transform_days=tuple(sorted(reasons)),
        chunks=chunks,
    )


def revisit_window(window: Window, ledger: Mapping[date, "DayStatus"]) -> Window:
    """`window` reaching back to the earliest incomplete day of `ledger` (the days inside the revision horizon).

    One request covers up to 14 days for the price of one call, and the load skips the
    days in between whose content has not changed: widening the window costs little more
    than the daily run itself.
    """
    incomplete = [day for day, entry in ledger.items() if entry.status == "incomplete" and day < window.first]
    return Window(min(incomplete), window.last) if incomplete else window


class Gaps(NamedTuple):
    """Days of a range that need a backfill, by why."""

    missing: list[date]
    failed: list[date]
    incomplete: list[date]


def gaps(expected: Window, ledger: Mapping[date, "DayStatus"], active: Iterable[str] = ()) -> Gaps:
    """Days of `expected` with no successful load or without some `active` location, days whose
    last attempt failed, and days with missing values."""
    active = frozenset(active)

    def missing(day: date) -> bool:
        entry = ledger.get(day)
        if entry is None or not entry.loaded:
            return True
        return entry.locations is not None and not active <= entry.locations

    return Gaps(
        missing=[day for day in expected.days if missing(day)],
        failed=[day for day in expected.days if day in ledger and ledger[day].status == "failed"],
        incomplete=[day for day in expected.days if day in ledger and ledger[day].status == "incomplete"],
    )
