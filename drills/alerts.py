"""Scenarios where the alerting path is down: the webhook receiver, the Prefect server."""

from __future__ import annotations

from drills.compare import compare
from drills.receiver import Receiver
from drills.report import Outcome
from drills.runs import Drill, backfill_args
from pipeline import processes
from pipeline.source_server import FaultPlan


def receiver_down(drill: Drill, outcome: Outcome) -> None:
    """A backfill fails while the webhook receiver is down; its alert arrives once, signed, when it is back."""
    window = drill.size.range
    db = drill.cluster.database("drill_scenario")
    receiver = Receiver()
    receiver.close()
    env = receiver.env() | {"PIPELINE_OUTBOX_RETRY_SECONDS": "0"}
    drill.source.faults = FaultPlan(daily_limit=1.0)
    failed = drill.run(db, backfill_args(window), **env)
    outcome.runs += 1
    outcome.faults += 1
    drill.source.faults = FaultPlan()
    waiting = drill.run(db, ["alerts"], **env)  # the receiver is still down: the alert waits
    receiver = receiver.reopen()
    try:
        later = drill.run(db, ["gaps", "--since", window.first.isoformat()], **env)
        outcome.runs += 2
        drill.converge(db, backfill_args(window), outcome, **env)
    finally:
        receiver.close()
    compare(drill, db, window.days, outcome)
    problems = []
    if failed.ok or waiting.returncode != 1 or "pipeline.run.failed" not in waiting.output:
        problems.append(f"no failed run with a waiting alert: {failed.reason} / {waiting.output.strip()[:100]}")
    failures = receiver.events("pipeline.run.failed")
    if len(failures) != 1:
        problems.append(f"{len(failures)} failure alerts arrived, expected 1")
    if not receiver.verified():
        problems.append("an alert failed its signature check")
    if "Traceback" in later.output:
        problems.append("the next command printed a traceback")
    outcome.judge(
        problems, f"the failure alert arrived once, signed, from the next command ({len(receiver.received)} messages)"
    )


def prefect_down(drill: Drill, outcome: Outcome) -> None:
    """check-freshness with the Prefect server unreachable: exit 1, one line, and the late alert."""
    window = drill.size.range
    db = drill.cluster.database("drill_scenario")
    receiver = Receiver()
    closed = processes.free_port()
    try:
        check = drill.run(
            db,
            ["check-freshness", "--date", window.last.isoformat()],
            PREFECT_API_URL=f"http://127.0.0.1:{closed}/api",
            **receiver.env(),
        )
        outcome.runs += 1
        outcome.faults += 1
        drill.converge(db, backfill_args(window), outcome, **receiver.env())
    finally:
        receiver.close()
    compare(drill, db, window.days, outcome)
    expected = f"{window.last}: LATE (daily run: unknown); alert sent"
    late = receiver.events("pipeline.run.late")
    problems = []
    if check.returncode != 1 or check.output.strip().splitlines()[-1:] != [expected]:
        problems.append(f"exit {check.returncode}: {check.output.strip()[-200:]}")
    if "Traceback" in check.output:
        problems.append("traceback")
    if len(late) != 1 or not receiver.verified():
        problems.append(f"{len(late)} signed late alerts, expected 1")
    outcome.judge(problems, "late alert sent with the server down (run state: unknown), exit 1")
