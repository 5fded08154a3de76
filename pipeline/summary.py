"""What a flow run did, as one typed value: the flows return it; the state hook, the CLI and the artifacts read it."""

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, PlainSerializer

from pipeline.window import Window

Kind = Literal["daily", "backfill"]
# Notifications carry the window's bounds as Python writes them ("2024-03-09T00:00:00+00:00").
IsoDatetime = Annotated[datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str)]


class WindowSummary(BaseModel):
    """A window as UTC days and as the half-open interval of hours they cover."""

    model_config = ConfigDict(frozen=True)

    first_day: date
    last_day: date
    start: IsoDatetime
    end: IsoDatetime

    @classmethod
    def of(cls, window: Window | None) -> "WindowSummary | None":
        if window is None:
            return None
        return cls(first_day=window.first, last_day=window.last, start=window.start, end=window.end)

    def __str__(self) -> str:
        return f"{self.first_day}..{self.last_day}"


class TestCounts(BaseModel):
    """dbt's data tests by status (`pass`, `fail`, …)."""

    model_config = ConfigDict(frozen=True)

    counts: dict[str, int]

    def __str__(self) -> str:
        """ "44 pass" or "42 pass, 1 warn, 1 error", as a person reads it."""
        return ", ".join(f"{count} {status}" for status, count in sorted(self.counts.items())) or "none"


class RunSummary(BaseModel):
    """A finished run. Fields a kind of run does not report stay unset, and out of its notification."""

    model_config = ConfigDict(frozen=True)

    kind: Kind
    window: WindowSummary
    rows_loaded: int = 0
    seconds: dict[str, float] = {}
    dbt_tests: TestCounts | None = None
    # The daily run.
    logical_date: date | None = None
    dbt_models: dict[str, int] | None = None
    # A backfill.
    reprocess: str | None = None
    plan: str | None = None
    days_planned: int | None = None
    api_calls: int | None = None
    dry_run: bool = False
    days_loaded: int | None = None
    stopped: str | None = None
    checksums_changed: int | None = None
    # What went wrong beside the data without failing the run (a dashboard that was not refreshed).
    warnings: list[str] = []

    def timings(self) -> str:
        """Where the time went: "extract 0.118 s, load 0.204 s, dbt 3.120 s"."""
        return ", ".join(f"{step} {seconds:.3f} s" for step, seconds in self.seconds.items())

    def table_row(self) -> dict:
        """The run's outcome as one row of a summary table artifact, each cell as a person reads it."""
        return {
            "window": str(self.window),
            "reprocess": self.reprocess,
            "days_planned": self.days_planned,
            "rows_loaded": self.rows_loaded,
            "checksums_changed": self.checksums_changed,
            "api_calls": self.api_calls,
            "dbt_tests": str(self.dbt_tests) if self.dbt_tests else None,
        }

    def data(self) -> dict:
        """The summary as a notification's `data` carries it (JSON types, only the fields this run set)."""
        return self.model_dump(mode="json", exclude_unset=True)
