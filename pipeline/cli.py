"""The `pipeline` command: daily runs, backfills, gaps, a demo, and the local source server."""

import argparse
import os
import sys
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

# Prefect, the flows and numpy are imported by the commands that use them: `--help` and a
# mistyped argument answer in a fraction of a second instead of after Prefect's ~3 s import.
from pipeline import stack_cli, warehouse
from pipeline.backfill import MODES, gaps
from pipeline.errors import first_line
from pipeline.locations import read_locations
from pipeline.settings import Settings
from pipeline.window import Window, check_not_future, consecutive_runs, parse_day

if TYPE_CHECKING:
    from pipeline.summary import RunSummary

# A fresh PREFECT_HOME takes ~24 s to migrate its first temporary server, past Prefect's 20 s default.
EPHEMERAL_STARTUP_SECONDS = 180


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    # Nothing here may call home: this machine may have no internet at all.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    if getattr(args, "quiet", False) and not args.verbose:
        # Prefect configures its logging on import: from then on only warnings reach the terminal,
        # while every line (dbt's node by node) still goes to the run's log on the server.
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
    from prefect.settings import (
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    with temporary_settings(
        updates={
            PREFECT_SERVER_ANALYTICS_ENABLED: False,
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: EPHEMERAL_STARTUP_SECONDS,
        }
    ):
        try:
            return args.handler(args)
        except (ValueError, warehouse.WarehouseError) as exc:
            print(f"pipeline: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130


def _past_day(value: str) -> date:
    try:
        # argparse prefixes the option's name: "argument --start: date '2024-02-30' is not …".
        return check_not_future(parse_day(value, "date"), datetime.now(UTC).date(), "date")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline", description=__doc__)
    commands = parser.add_subparsers(title="commands")

    run = commands.add_parser("run", help="run the daily flow for one logical date")
    run.add_argument("--date", type=_past_day, help="logical date YYYY-MM-DD (default: yesterday, UTC)")
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser("demo", help="run the pipeline end to end on a local Postgres and source server")
    demo.add_argument("--date", type=_past_day, help="logical date YYYY-MM-DD (default: yesterday, UTC)")
    demo.add_argument("-v", "--verbose", action="store_true", help="show every log line (dbt's too) on the terminal")
    demo.set_defaults(handler=cmd_demo, quiet=True)

    backfill = commands.add_parser("backfill", help="load an inclusive range of logical dates")
    backfill.add_argument("--start", required=True, type=_past_day, help="first logical date, YYYY-MM-DD")
    backfill.add_argument("--end", required=True, type=_past_day, help="last logical date, YYYY-MM-DD")
    backfill.add_argument(
        "--reprocess",
        choices=MODES,
        default="missing",
        help="missing: days never loaded, and locations a day lacks (default); failed: also days whose last "
        "attempt failed; incomplete: also days with missing values; all: every day; transform: no download, "
        "rebuild and publish every day with dbt",
    )
    backfill.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    backfill.add_argument("--yes", action="store_true", help="allow a range longer than PIPELINE_BACKFILL_MAX_DAYS")
    backfill.set_defaults(handler=cmd_backfill)

    gaps_command = commands.add_parser("gaps", help="days the daily schedule should have loaded but did not")
    gaps_command.add_argument("--since", type=_past_day, help="first logical date to check (default: 30 days ago)")
    gaps_command.set_defaults(handler=cmd_gaps)

    freshness = commands.add_parser("check-freshness", help="alert once if a logical date missed its deadline")
    freshness.add_argument("--date", type=_past_day, help="logical date (default: the latest past its deadline)")
    freshness.set_defaults(handler=cmd_check_freshness)

    alerts_command = commands.add_parser(
        "alerts", help="deliver waiting notifications, then list those still undelivered (exit 1 if any)"
    )
    alerts_command.set_defaults(handler=cmd_alerts)

    source = commands.add_parser("source", help="the local Open-Meteo-compatible API").add_subparsers()
    serve = source.add_parser("serve", help="serve the archive API on this machine")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--faults", help="e.g. server_error=0.2,rate_limited=0.1,seed=7 (default: $PIPELINE_SOURCE_FAULTS)"
    )
    serve.set_defaults(handler=cmd_source_serve)

    stack_cli.add_commands(commands)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    return _run_daily(args.date)


def _finished(state, command: str) -> "RunSummary | None":
    """The flow's result, or None after printing the one-line reason it failed."""
    if state.is_completed():
        return state.result()
    result = state.result(raise_on_failure=False)
    reason = first_line(result) if isinstance(result, BaseException) else str(state.message)
    if isinstance(result, TimeoutError) and state.message:  # "Flow run exceeded timeout of …", not "Scope …"
        reason = state.message
    print(f"pipeline {command} failed: {reason}", file=sys.stderr)
    return None


def _run_daily(day: date | None) -> int:
    read_locations(Settings().locations_file)
    from flows.daily import daily_weather

    timed = daily_weather.with_options(timeout_seconds=Settings().daily_timeout_seconds)
    summary = _finished(timed(logical_date=day, return_state=True), "run")
    if summary is None:
        return 1
    print(
        f"pipeline run succeeded: logical date {summary.logical_date}, window {summary.window}, "
        f"{summary.rows_loaded} rows loaded, dbt tests {summary.dbt_tests.counts}; seconds: {summary.seconds}"
    )
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    settings = Settings()
    if args.end < args.start:
        raise ValueError(f"--end {args.end} is before --start {args.start}")
    days = (args.end - args.start).days + 1
    if days > settings.backfill_max_days and not args.yes:
        raise ValueError(
            f"--start {args.start} --end {args.end} is {days} days, more than PIPELINE_BACKFILL_MAX_DAYS="
            f"{settings.backfill_max_days}: pass --yes if you mean it"
        )
    # Bad input is refused here, before a flow run exists, with the error alone and no traceback.
    read_locations(settings.locations_file)
    from flows.backfill import backfill_weather

    state = backfill_weather.with_options(timeout_seconds=settings.backfill_timeout_seconds)(
        start_date=args.start, end_date=args.end, reprocess=args.reprocess, dry_run=args.dry_run, return_state=True
    )
    summary = _finished(state, "backfill")
    if summary is None:
        return 1
    print(summary.plan)
    if not args.dry_run and summary.stopped:
        print(
            f"pipeline backfill stopped: {summary.days_loaded} of {summary.days_planned} days loaded, "
            f"{summary.rows_loaded:,} rows; {summary.stopped}"
        )
        return 3
    if not args.dry_run:
        tests = summary.dbt_tests.counts if summary.dbt_tests else None
        print(
            f"pipeline backfill succeeded: {summary.days_planned} days loaded, {summary.rows_loaded:,} rows, "
            f"{summary.checksums_changed} days changed, dbt tests {tests}; seconds: {summary.seconds}"
        )
    return 0


def cmd_gaps(args: argparse.Namespace) -> int:
    from pipeline import ledger, outbox
    from pipeline.runs import warehouse_dsn

    settings = Settings()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    since = args.since or yesterday - timedelta(days=29)
    expected = Window(since, yesterday)
    active = [location.location_id for location in read_locations(settings.locations_file)]
    dsn = warehouse_dsn(settings).get_secret_value()
    with warehouse.connect(dsn) as conn:
        missing, failed, incomplete = gaps(expected, ledger.status(conn, expected), active)
    outbox.flush(settings, dsn)
    print(f"checked {expected} ({len(expected)} logical dates, {len(active)} locations)")
    print(f"missing:    {_days(missing)}")
    print(f"failed:     {_days(failed)}")
    print(f"incomplete: {_days(incomplete)}")
    for run in consecutive_runs(missing + failed + incomplete):
        days = set(run.days)
        reprocess = " --reprocess failed" if days & set(failed) else ""
        reprocess = " --reprocess incomplete" if days & set(incomplete) and not reprocess else reprocess
        print(f"  pipeline backfill --start {run.first} --end {run.last}{reprocess}")
    return 1 if missing or failed or incomplete else 0


def cmd_check_freshness(args: argparse.Namespace) -> int:
    # Not a flow run: the systemd timer must alert with no Prefect server or worker up.
    from pipeline import alerts, freshness
    from pipeline.runs import warehouse_dsn

    settings = Settings()
    day = args.date or alerts.due_logical_date(datetime.now(UTC), settings.deadline)
    lookup = freshness.bounded_lookup(settings.prefect_api_timeout_seconds)
    dsn = warehouse_dsn(settings).get_secret_value()
    result = freshness.check(settings, dsn, day, freshness.DAILY_DEPLOYMENT, lookup)
    if not result["late"]:
        print(f"{result['logical_date']}: landed")
        return 0
    alerted = "alert sent" if result["alerted"] else "already alerted"
    print(f"{result['logical_date']}: LATE (daily run: {result['run_state']}); {alerted}")
    return 1


def cmd_alerts(args: argparse.Namespace) -> int:
    from pipeline import outbox
    from pipeline.runs import warehouse_dsn

    settings = Settings()
    dsn = warehouse_dsn(settings).get_secret_value()
    delivered = outbox.flush(settings, dsn)
    with warehouse.connect(dsn) as conn:
        pending = outbox.undelivered(conn)
    if delivered:
        print(f"delivered {delivered} waiting notification(s)")
    if not pending:
        print("no undelivered notifications")
        return 0
    print(f"{'id':>6}  {'state':<8} {'type':<28} {'created (UTC)':<17} {'tries':>5}  next attempt / last error")
    for message in pending:
        print(
            f"{message.id:>6}  {message.state:<8} {message.event_type:<28} {_minute(message.created_at):<17} "
            f"{message.attempts:>5}  {_minute(message.next_attempt_at)}  {message.last_error or ''}".rstrip()
        )
    return 1


def _minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _days(days: list[date]) -> str:
    return ", ".join(str(run) for run in consecutive_runs(days)) or "none"


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline import demo

    return demo.run(args.date)


def cmd_source_serve(args: argparse.Namespace) -> int:
    from pipeline import source_server

    faults = source_server.FaultPlan.parse(args.faults) if args.faults else source_server.FaultPlan.from_env()
    source_server.serve(args.host, args.port, faults)
    return 0
