"""The `pipeline` command: daily runs, backfills, gaps, a demo, and the local source server."""

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

# Typer's own copy of Click: its usage errors are shown here, in argparse's form, not Typer's.
from typer._click import exceptions as click_exceptions

from pipeline import backfill, stack_cli
from pipeline.dashboard import cli as dashboard_cli
from pipeline.window import check_not_future, parse_day

if TYPE_CHECKING:
    from blocks import Resources
    from pipeline.summary import RunSummary

# Prefect, the flows, numpy, psycopg and pydantic-settings are imported by the commands that use
# them: `--help` and a mistyped argument answer in a fraction of a second instead of after
# Prefect's ~3 s import, and a bad argument is refused before anything is touched.

# A fresh PREFECT_HOME takes ~24 s to migrate its first temporary server, past Prefect's 20 s default.
EPHEMERAL_STARTUP_SECONDS = 180

REPROCESS_MODES = backfill.MODES

app = typer.Typer(
    name="pipeline",
    help=__doc__,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
source_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
app.add_typer(source_app, name="source", help="the local Open-Meteo-compatible API")


def main(argv: list[str] | None = None) -> int:
    command = typer.main.get_command(app)
    try:
        return command.main(args=argv, prog_name="pipeline", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as exc:
        print(exc.format_message())
        return 2
    except click_exceptions.UsageError as exc:
        # argparse's form, which scripts and the drill read: `pipeline run: error: argument --date: …`.
        if exc.ctx is not None:
            print(exc.ctx.get_usage(), file=sys.stderr)
        prog = exc.ctx.command_path if exc.ctx is not None else "pipeline"
        print(f"{prog}: error: {_usage_message(exc)}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except click_exceptions.Abort:  # end of input at a prompt: the same as Ctrl-C
        return 130


def _usage_message(exc: click_exceptions.UsageError) -> str:
    if isinstance(exc, click_exceptions.BadParameter) and not isinstance(exc, click_exceptions.MissingParameter):
        if exc.param is not None and exc.param.opts:
            return f"argument {max(exc.param.opts, key=len)}: {exc.message}"
    return exc.format_message()


def execute(command: Callable[[], int], quiet: bool = False) -> int:
    """Run one command under the pipeline's Prefect settings; bad input ends in one line and exit 2."""
    from pipeline.defaults import OFFLINE_ENV

    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)
    if quiet:
        # Prefect configures its logging on import: from then on only warnings reach the terminal,
        # while every line (dbt's node by node) still goes to the run's log on the server.
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
    from prefect.settings import (
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    from pipeline import warehouse

    with temporary_settings(
        updates={
            PREFECT_SERVER_ANALYTICS_ENABLED: False,
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: EPHEMERAL_STARTUP_SECONDS,
        }
    ):
        try:
            return command()
        except (ValueError, warehouse.WarehouseError) as exc:
            print(f"pipeline: {exc}", file=sys.stderr)
            return 2


def _past_day(value: str) -> date:
    try:
        # The option's name is added when the error is shown: "argument --start: date '2024-02-30' is not …".
        return check_not_future(parse_day(value, "date"), datetime.now(UTC).date(), "date")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _reprocess_mode(value: str) -> str:
    if value not in REPROCESS_MODES:
        choices = ", ".join(map(repr, REPROCESS_MODES))
        raise typer.BadParameter(f"invalid choice: {value!r} (choose from {choices})")
    return value


def _day_option(help_text: str, *names: str) -> typer.models.OptionInfo:
    return typer.Option(*names, parser=_past_day, metavar="YYYY-MM-DD", help=help_text, show_default=False)


LogicalDate = Annotated[date | None, _day_option("logical date YYYY-MM-DD (default: yesterday, UTC)", "--date")]


@app.command("run")
def run_command(day: LogicalDate = None) -> int:
    """run the daily flow for one logical date"""
    return execute(lambda: _with_local_warehouse(lambda: _run_daily(day), flows=True))


@app.command("demo")
def demo_command(
    day: LogicalDate = None,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="show every log line (dbt's too) on the terminal")
    ] = False,
) -> int:
    """run the pipeline end to end on a local Postgres and source server"""

    def demo() -> int:
        from pipeline import demo

        return demo.run(day)

    return execute(demo, quiet=not verbose)


@app.command("backfill")
def backfill_command(
    start: Annotated[date, _day_option("first logical date, YYYY-MM-DD", "--start")],
    end: Annotated[date, _day_option("last logical date, YYYY-MM-DD", "--end")],
    reprocess: Annotated[
        str,
        typer.Option(
            "--reprocess",
            parser=_reprocess_mode,
            metavar="{" + ",".join(REPROCESS_MODES) + "}",
            help="missing: days never loaded, and locations a day lacks (default); failed: also days whose last "
            "attempt failed; incomplete: also days with missing values; all: every day; transform: no download, "
            "rebuild and publish every day with dbt",
            show_default=False,
        ),
    ] = "missing",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan and change nothing")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="allow a range longer than PIPELINE_BACKFILL_MAX_DAYS")] = False,
) -> int:
    """load an inclusive range of logical dates"""
    return execute(lambda: _with_local_warehouse(lambda: _backfill(start, end, reprocess, dry_run, yes), flows=True))


@app.command("gaps")
def gaps_command(
    since: Annotated[date | None, _day_option("first logical date to check (default: 30 days ago)", "--since")] = None,
) -> int:
    """days the daily schedule should have loaded but did not"""
    return execute(lambda: _with_local_warehouse(lambda: _gaps(since)))


@app.command("check-freshness")
def check_freshness_command(
    day: Annotated[date | None, _day_option("logical date (default: the latest past its deadline)", "--date")] = None,
) -> int:
    """alert once if a logical date missed its deadline"""
    return execute(lambda: _with_local_warehouse(lambda: _check_freshness(day)))


@app.command("alerts")
def alerts_command(
    resend: Annotated[
        int | None,
        typer.Option("--resend", metavar="ID", help="send this notification now, dead-lettered or not"),
    ] = None,
) -> int:
    """deliver waiting notifications, then list those still undelivered (exit 1 if any)"""
    return execute(lambda: _with_local_warehouse(lambda: _alerts(resend)))


@source_app.command("serve")
def source_serve_command(
    host: Annotated[str, typer.Option("--host", metavar="HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT")] = 8080,
    faults: Annotated[
        str | None,
        typer.Option(
            "--faults",
            metavar="FAULTS",
            help="e.g. server_error=0.2,rate_limited=0.1,seed=7 (default: $PIPELINE_SOURCE_FAULTS)",
        ),
    ] = None,
) -> int:
    """serve the archive API on this machine"""
    return execute(lambda: _source_serve(host, port, faults))


stack_cli.add_commands(app, execute)
# A lambda: _with_local_warehouse is defined below.
dashboard_cli.add_commands(app, execute, lambda command: _with_local_warehouse(command))


def _with_local_warehouse(command: Callable[[], int], flows: bool = False) -> int:
    with _local_warehouse_unless_configured(flows):
        return command()


@contextmanager
def _local_warehouse_unless_configured(flows: bool) -> Iterator[None]:
    """With no warehouse configured, start the embedded local Postgres and make it this command's warehouse.

    It reaches the flows the command runs, in this process, as PIPELINE_DATABASE_URL; a flow run by a
    deployment's worker never starts one of its own.

    Args:
        flows: the command runs flows, which may read the warehouse from its block document.
    """
    from blocks import warehouse_configured
    from pipeline import embedded
    from pipeline.settings import Settings

    settings = Settings()
    if warehouse_configured(settings, from_blocks=flows):
        yield
        return
    os.environ["PIPELINE_DATABASE_URL"] = embedded.start(settings.data_dir)
    try:
        yield
    finally:
        os.environ.pop("PIPELINE_DATABASE_URL", None)


def _resources() -> "Resources":
    """The resources of a command that is not a flow run: from the environment, reading no block but the
    warehouse document PIPELINE_WAREHOUSE_BLOCK names when PIPELINE_DATABASE_URL is unset."""
    from blocks import Resources, load_warehouse
    from pipeline.settings import Settings

    settings = Settings()
    if settings.warehouse_block is not None and settings.database_url is None:
        return Resources.build(settings, load_warehouse(settings))
    return Resources.build(settings)


def _finished(state, command: str) -> "RunSummary | None":
    """The flow's result, or None after printing the one-line reason it failed."""
    if state.is_completed():
        return state.result()
    from pipeline.errors import first_line

    result = state.result(raise_on_failure=False)
    reason = first_line(result) if isinstance(result, BaseException) else str(state.message)
    print(f"pipeline {command} failed: {reason}", file=sys.stderr)
    return None


def _run_daily(day: date | None) -> int:
    from pipeline.locations import read_locations
    from pipeline.settings import Settings

    read_locations(Settings().locations_file)
    from flows.daily import daily_weather

    summary = _finished(daily_weather(logical_date=day, return_state=True), "run")
    if summary is None:
        return 1
    print(
        f"pipeline run succeeded: logical date {summary.logical_date}, window {summary.window}, "
        f"{summary.rows_loaded} rows loaded, dbt tests {summary.dbt_tests}; {summary.timings()}"
    )
    _print_warnings(summary)
    return 0


def _backfill(start: date, end: date, reprocess: str, dry_run: bool, yes: bool) -> int:
    from pipeline.locations import read_locations
    from pipeline.settings import Settings

    settings = Settings()
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    days = (end - start).days + 1
    if days > settings.backfill_max_days and not yes:
        raise ValueError(
            f"--start {start} --end {end} is {days} days, more than PIPELINE_BACKFILL_MAX_DAYS="
            f"{settings.backfill_max_days}: pass --yes if you mean it"
        )
    # Bad input is refused here, before a flow run exists, with the error alone and no traceback.
    read_locations(settings.locations_file)
    from flows.backfill import backfill_weather

    state = backfill_weather(start_date=start, end_date=end, reprocess=reprocess, dry_run=dry_run, return_state=True)
    summary = _finished(state, "backfill")
    if summary is None:
        return 1
    print(summary.plan)
    if not dry_run and summary.stopped:
        print(
            f"pipeline backfill stopped: {summary.days_loaded} of {summary.days_planned} days loaded, "
            f"{summary.rows_loaded:,} rows; {summary.stopped}"
        )
        return 3
    if not dry_run:
        print(
            f"pipeline backfill succeeded: {summary.days_planned} days loaded, {summary.rows_loaded:,} rows, "
            f"{summary.checksums_changed} days changed, dbt tests {summary.dbt_tests or 'none'}; {summary.timings()}"
        )
        _print_warnings(summary)
    return 0


def _print_warnings(summary: "RunSummary") -> None:
    for warning in summary.warnings:  # the run succeeded; something beside it did not (the dashboard)
        print(f"warning: {warning}", file=sys.stderr)


def _gaps(since: date | None) -> int:
    from pipeline import ledger, outbox
    from pipeline.backfill import gaps
    from pipeline.locations import read_locations
    from pipeline.window import Window, consecutive_runs

    resources = _resources()
    settings = resources.settings
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    expected = Window(since or yesterday - timedelta(days=29), yesterday)
    active = [location.location_id for location in read_locations(settings.locations_file)]
    with resources.warehouse.connect() as conn:
        missing, failed, incomplete = gaps(expected, ledger.status(conn, expected), active)
    outbox.flush(resources)
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


def _check_freshness(day: date | None) -> int:
    # Not a flow run: the systemd timer must alert with no Prefect server or worker up.
    from pipeline import alerts, freshness

    resources = _resources()
    settings = resources.settings
    day = day or alerts.due_logical_date(datetime.now(UTC), settings.deadline)
    lookup = freshness.bounded_lookup(settings.prefect_api_timeout_seconds)
    result = freshness.check(resources, day, freshness.DAILY_DEPLOYMENT, lookup)
    if not result.late:
        print(f"{result.logical_date}: landed")
        return 0
    alerted = "alert sent" if result.alerted else "already alerted"
    print(f"{result.logical_date}: LATE (daily run: {result.run_state}); {alerted}")
    return 1


def _alerts(resend: int | None = None) -> int:
    from pipeline import outbox

    resources = _resources()
    if resend is not None:
        with resources.warehouse.connect(autocommit=True) as conn:
            attempt = outbox.resend(conn, resources, resend)
        print(f"notification {resend}: {'delivered' if attempt.accepted else 'not delivered'} ({attempt.outcome})")
    delivered = outbox.flush(resources)
    with resources.warehouse.connect() as conn:
        pending = outbox.undelivered(conn)
    if delivered:
        print(f"delivered {delivered} waiting notification(s)")
    if not pending:
        print("no undelivered notifications")
        return 0
    print(f"{'id':>6}  {'state':<8} {'type':<28} {'created (UTC)':<17} {'tries':>5}  next attempt / last error")
    for message in pending:
        # A dead letter is not tried again: the time shown is when it was given up.
        when = _minute(message.dead_at or message.next_attempt_at)
        print(
            f"{message.id:>6}  {message.state:<8} {message.event_type:<28} {_minute(message.created_at):<17} "
            f"{message.attempts:>5}  {when}  {message.last_error or ''}".rstrip()
        )
    if any(message.dead_at for message in pending):
        print("dead: no longer retried; once the receiver is fixed, re-send with: pipeline alerts --resend ID")
    return 1


def _minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _days(days: list[date]) -> str:
    from pipeline.window import consecutive_runs

    return ", ".join(str(run) for run in consecutive_runs(days)) or "none"


def _source_serve(host: str, port: int, faults: str | None) -> int:
    from pipeline import source_server

    plan = source_server.FaultPlan.parse(faults) if faults else source_server.FaultPlan.from_env()
    source_server.serve(host, port, plan)
    return 0
