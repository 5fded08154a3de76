"""Scenarios where the source fails or lies: API faults, broken payloads, bad data, changed locations."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg

from drills.compare import compare
from drills.report import Outcome
from drills.runs import Drill, backfill_args, innermost, locations_csv
from pipeline.source_server import FaultPlan
from pipeline.window import Window


def three_days(drill: Drill) -> tuple[Window, date]:
    """The first three days of the drill's range, and the middle one, which the scenario breaks."""
    first = drill.size.range.first
    return Window(first, first + timedelta(days=2)), first + timedelta(days=1)


def api_faults(drill: Drill, outcome: Outcome, plan: FaultPlan, window: Window, env: dict[str, str]) -> None:
    """A backfill while the API fails as `plan` says, rerun until it succeeds."""
    db = drill.cluster.database("drill_scenario")
    drill.source.faults = plan
    drill.converge(db, backfill_args(window), outcome, **env)
    compare(drill, db, window.days, outcome)


def bad_payload(drill: Drill, outcome: Outcome, fault: str, expect: str) -> None:
    """Three days, one chunk each; the middle day's answers are broken, then the API recovers."""
    days, bad = three_days(drill)
    db = drill.cluster.database("drill_scenario")
    drill.source.faults = FaultPlan(**{fault: 1.0}, only_on=bad, seed=drill.seed)
    first = drill.run(db, backfill_args(days), PIPELINE_BACKFILL_CHUNK_DAYS="1")
    outcome.runs += 1
    after_failure = db.snapshot()["raw"]
    ledger = db.ledger()
    problems = []
    if first.ok:
        problems.append("the run with a broken day succeeded")
    if expect not in first.output:
        problems.append(f"message lacks {expect!r}: {first.reason}")
    if bad in after_failure:
        problems.append(f"{bad} partly loaded")
    if ledger.get(bad) != "failed":
        problems.append(f"ledger says {ledger.get(bad)} for {bad}")
    for day in (days.first, days.last):
        if after_failure.get(day) != drill.expected["raw"][day]:
            problems.append(f"{day} affected")
    drill.source.faults = FaultPlan()
    drill.converge(db, backfill_args(days), outcome)
    compare(drill, db, days.days, outcome)
    outcome.judge(problems, f"{bad} failed: {innermost(first.reason)}")


def hot_day(drill: Drill, outcome: Outcome) -> None:
    """99 °C on one day: the build fails naming the test and the day, marts stay as they were;
    `--reprocess failed` re-fetches the day once the API sends sane values, and publishes."""
    days, bad = three_days(drill)
    db = drill.cluster.database("drill_scenario")
    drill.converge(db, backfill_args(Window(days.first, days.first)), outcome)
    published = db.snapshot()["mart"]
    drill.source.faults = FaultPlan(hot_day=1.0, only_on=bad, seed=drill.seed)
    run = drill.run(db, backfill_args(days))
    outcome.runs += 1
    problems = []
    if run.ok:
        problems.append("the run with a 99 °C day succeeded")
    if "temperature_2m_range" not in run.reason or str(bad) not in run.reason:
        problems.append(f"message lacks the test or the day: {run.reason}")
    if db.snapshot()["mart"] != published:
        problems.append("marts changed")
    if db.ledger().get(bad) != "failed":
        problems.append(f"ledger says {db.ledger().get(bad)} for {bad}")
    drill.source.faults = FaultPlan()
    drill.converge(db, [*backfill_args(days), "--reprocess", "failed"], outcome)
    compare(drill, db, days.days, outcome)
    outcome.judge(problems, f"marts unchanged until fixed: {innermost(run.reason)}")


def location_changes(drill: Drill, outcome: Outcome) -> None:
    """One location leaves the file and another joins: the first keeps its history, a plain
    backfill fetches the second alone, and the warehouse ends as if both had always been there."""
    days, _ = three_days(drill)
    lines = locations_csv(drill.size.locations).splitlines(keepends=True)
    ids = [line.split(",")[0] for line in lines[1:]]
    leaving, joining = ids[0], ids[-1]
    before, after = drill.work / "locations-before.csv", drill.work / "locations-after.csv"
    before.write_text("".join(line for line in lines if not line.startswith(f"{joining},")), encoding="utf-8")
    after.write_text("".join(line for line in lines if not line.startswith(f"{leaving},")), encoding="utf-8")
    db = drill.cluster.database("drill_scenario")
    drill.converge(db, backfill_args(days), outcome, PIPELINE_LOCATIONS_FILE=str(before))
    drill.source.reset_counters()
    drill.converge(db, backfill_args(days), outcome, PIPELINE_LOCATIONS_FILE=str(after))
    problems = []
    if drill.source.requests != 1:
        problems.append(f"{drill.source.requests} requests to fill one new location over {len(days)} days")
    with psycopg.connect(db.dsn) as conn:
        retired = conn.execute("select is_active from marts.dim_locations where location_id = %s", [leaving]).fetchone()
    if retired != (False,):
        problems.append(f"{leaving} is {retired} in dim_locations, expected retired")
    compare(drill, db, days.days, outcome)
    outcome.judge(problems, f"{leaving} retired with its history; {joining} filled alone")
