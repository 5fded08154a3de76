"""The clean reference run, and a scenario's warehouse compared with it day by day."""

from __future__ import annotations

from datetime import date

from drills.cluster import Warehouse
from drills.report import Outcome
from drills.runs import Drill, backfill_args
from pipeline.window import Window

MISSING = (0, 0, "")


def reference(drill: Drill, windows: list[Window]) -> dict[str, dict]:
    """Checksums of one clean backfill of each window, into a database of its own."""
    db = drill.cluster.database("drill_reference")
    for window in windows:
        run = drill.run(db, backfill_args(window))
        if not run.ok:
            raise SystemExit(f"drill: the clean reference run failed, nothing to compare with:\n{run.output}")
    return db.snapshot()


def compare(drill: Drill, db: Warehouse, days: list[date], outcome: Outcome) -> None:
    """Fill in identical / lost / duplicated for `days` of `db` against the reference."""
    tally(drill.expected, db.snapshot(), days, outcome)


def tally(expected: dict[str, dict], got: dict[str, dict], days: list[date], outcome: Outcome) -> None:
    """Identical when each table holds exactly the reference's `days`; counts missing and surplus keys."""
    identical = True
    for table in ("raw", "mart"):
        wanted = {day: expected[table][day] for day in days}
        actual = got[table]
        identical &= actual == wanted
        for day in set(wanted) | set(actual):
            ref_keys = wanted.get(day, MISSING)[1]
            rows, keys, _ = actual.get(day, MISSING)
            outcome.lost += max(0, ref_keys - keys)
            outcome.duplicated += (rows - keys) + max(0, keys - ref_keys)
    outcome.identical = identical and not outcome.note.startswith("still failing")
