"""What commands print: one line per outcome, tables for people; no Python reprs."""

import sys
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from pipeline.window import consecutive_runs

if TYPE_CHECKING:
    from pipeline.gaps import GapReport
    from pipeline.outbox import Pending
    from pipeline.summary import RunSummary


def failed(command: str, reason: str) -> None:
    print(f"pipeline {command} failed: {reason}", file=sys.stderr)


def run_succeeded(summary: "RunSummary") -> None:
    print(
        f"pipeline run succeeded: logical date {summary.logical_date}, window {summary.window}, "
        f"{summary.rows_loaded} rows loaded, dbt tests {summary.dbt_tests}; {summary.timings()}"
    )
    warnings(summary)


def backfill_stopped(summary: "RunSummary") -> None:
    print(
        f"pipeline backfill stopped: {summary.days_loaded} of {summary.days_planned} days loaded, "
        f"{summary.rows_loaded:,} rows; {summary.stopped}"
    )


def backfill_succeeded(summary: "RunSummary") -> None:
    print(
        f"pipeline backfill succeeded: {summary.days_planned} days loaded, {summary.rows_loaded:,} rows, "
        f"{summary.checksums_changed} days changed, dbt tests {summary.dbt_tests or 'none'}; {summary.timings()}"
    )
    warnings(summary)


def warnings(summary: "RunSummary") -> None:
    for warning in summary.warnings:  # the run succeeded; something beside it did not (the dashboard)
        print(f"warning: {warning}", file=sys.stderr)


def gaps(found: "GapReport") -> None:
    print(f"checked {found.expected} ({len(found.expected)} logical dates, {found.locations} locations)")
    print(f"missing:    {days(found.missing)}")
    print(f"failed:     {days(found.failed)}")
    print(f"incomplete: {days(found.incomplete)}")
    for command in found.backfills():
        print(f"  {command}")


def undelivered(pending: "list[Pending]") -> None:
    print(f"{'id':>6}  {'state':<8} {'type':<28} {'created (UTC)':<17} {'tries':>5}  next attempt / last error")
    for message in pending:
        # A dead letter is not tried again: the time shown is when it was given up.
        when = minute(message.dead_at or message.next_attempt_at)
        print(
            f"{message.id:>6}  {message.state:<8} {message.event_type:<28} {minute(message.created_at):<17} "
            f"{message.attempts:>5}  {when}  {message.last_error or ''}".rstrip()
        )
    if any(message.dead_at for message in pending):
        print("dead: no longer retried; once the receiver is fixed, re-send with: pipeline alerts --resend ID")


def minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def days(values: list[date]) -> str:
    return ", ".join(str(run) for run in consecutive_runs(values)) or "none"
