"""Which UTC days a run processes: its logical date and window."""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, order=True)
class Window:
    """An inclusive range of UTC days, i.e. the instants `[first 00:00Z, last+1 00:00Z)`."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"window ends ({self.last}) before it starts ({self.first})")

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive end instant."""
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=UTC)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(len(self))]

    def __len__(self) -> int:
        return (self.last - self.first).days + 1

    def __str__(self) -> str:
        return f"{self.first}..{self.last}" if self.first != self.last else str(self.first)


def logical_date_for(scheduled_at: datetime) -> date:
    """The day a run scheduled at `scheduled_at` processes: the UTC day before it.

    Naive datetimes are rejected: a schedule without a time zone is ambiguous.
    """
    if scheduled_at.tzinfo is None or scheduled_at.utcoffset() is None:
        raise ValueError(f"scheduled time {scheduled_at.isoformat()} has no time zone")
    return scheduled_at.astimezone(UTC).date() - timedelta(days=1)


def daily_window(logical_date: date, lookback_days: int) -> Window:
    """The logical date plus `lookback_days` earlier days, which the archive may have revised."""
    if lookback_days < 0:
        raise ValueError(f"lookback_days must be >= 0, got {lookback_days}")
    return Window(logical_date - timedelta(days=lookback_days), logical_date)


def parse_day(value: str, name: str = "date") -> date:
    """Parse a `YYYY-MM-DD` string, naming the input in the error."""
    # date.fromisoformat also takes "20240309" and week dates; the contract is YYYY-MM-DD only.
    try:
        if not _ISO_DAY.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not a valid date: expected YYYY-MM-DD") from None


def check_not_future(day: date, today: date, name: str = "date") -> date:
    """Reject a logical date whose day has not ended yet: its data cannot be complete."""
    if day >= today:
        raise ValueError(f"{name} {day} is not in the past: the latest day with data is {today - timedelta(days=1)}")
    return day


def requested_range(start: date, end: date, max_days: int, confirmed: bool = False) -> Window:
    """The inclusive range `--start`..`--end` of a backfill; one longer than `max_days` needs `confirmed` (--yes)."""
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    window = Window(start, end)
    if len(window) > max_days and not confirmed:
        raise ValueError(
            f"--start {start} --end {end} is {len(window)} days, more than PIPELINE_BACKFILL_MAX_DAYS="
            f"{max_days}: pass --yes if you mean it"
        )
    return window


def chunk(window: Window, max_days: int) -> list[Window]:
    """Split a window into consecutive windows of at most `max_days` days."""
    if max_days < 1:
        raise ValueError(f"max_days must be >= 1, got {max_days}")
    days = window.days
    return [Window(days[i], days[min(i + max_days, len(days)) - 1]) for i in range(0, len(days), max_days)]


def consecutive_runs(days: Iterable[date], key: Callable[[date], object] | None = None) -> list[Window]:
    """Sorted days grouped into windows of consecutive dates; with `key`, of consecutive dates whose keys are equal."""
    runs: list[Window] = []
    for day in sorted(days):
        if runs and runs[-1].last + timedelta(days=1) == day and (key is None or key(runs[-1].last) == key(day)):
            runs[-1] = Window(runs[-1].first, day)
        else:
            runs.append(Window(day, day))
    return runs
