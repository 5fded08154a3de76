"""The `pipeline` command: daily runs, backfills, gaps, a demo, and the local source server."""

from datetime import date
from typing import Annotated

import typer

from pipeline import stack_cli
from pipeline.cli import commands, usage
from pipeline.cli.commands import BackfillRequest
from pipeline.cli.context import execute, with_warehouse
from pipeline.cli.options import REPROCESS_MODES, LogicalDate, day_option, reprocess_mode
from pipeline.dashboard import cli as dashboard_cli

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
    """The console script `pipeline`."""
    return usage.main(app, argv)


@app.command("run")
def run_command(day: LogicalDate = None) -> int:
    """run the daily flow for one logical date"""
    return execute(lambda: with_warehouse(lambda settings: commands.run_daily(settings, day), flows=True))


@app.command("demo")
def demo_command(
    day: LogicalDate = None,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="show every log line (dbt's too) on the terminal")
    ] = False,
) -> int:
    """run the pipeline end to end on a local Postgres and source server"""
    from pipeline.settings import Settings

    return execute(lambda: commands.demo(Settings(), day, verbose))


@app.command("backfill")
def backfill_command(
    start: Annotated[date, day_option("first logical date, YYYY-MM-DD", "--start")],
    end: Annotated[date, day_option("last logical date, YYYY-MM-DD", "--end")],
    reprocess: Annotated[
        str,
        typer.Option(
            "--reprocess",
            parser=reprocess_mode,
            metavar="{" + ",".join(REPROCESS_MODES) + "}",
            help="missing: days never loaded, and locations a day lacks (default); failed: also days whose last "
            "attempt failed; incomplete: also days with missing values; all: every day; transform: no download, "
            "rebuild and publish every day with dbt",
            show_default=False,
        ),
    ] = "missing",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan and change nothing")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="allow a range longer than PIPELINE_BACKFILL_MAX_DAYS")] = False,
    spread: Annotated[
        bool,
        typer.Option(
            "--spread",
            help="load the chunks as runs of the backfill-chunk deployment, on any worker of its pool; needs the "
            "Prefect server in PREFECT_API_URL running, the deployments applied (pipeline deploy) and workers up",
        ),
    ] = False,
) -> int:
    """load an inclusive range of logical dates"""
    request = BackfillRequest(start, end, reprocess, dry_run, yes, spread)
    return execute(lambda: with_warehouse(lambda settings: commands.backfill(settings, request), flows=True))


@app.command("gaps")
def gaps_command(
    since: Annotated[date | None, day_option("first logical date to check (default: 30 days ago)", "--since")] = None,
) -> int:
    """days the daily schedule should have loaded but did not"""
    return execute(lambda: with_warehouse(lambda settings: commands.gaps(settings, since)))


@app.command("check-freshness")
def check_freshness_command(
    day: Annotated[date | None, day_option("logical date (default: the latest past its deadline)", "--date")] = None,
) -> int:
    """alert once if a logical date missed its deadline"""
    return execute(lambda: with_warehouse(lambda settings: commands.check_freshness(settings, day)))


@app.command("alerts")
def alerts_command(
    resend: Annotated[
        int | None,
        typer.Option("--resend", metavar="ID", help="send this notification now, dead-lettered or not"),
    ] = None,
) -> int:
    """deliver waiting notifications, then list those still undelivered (exit 1 if any)"""
    return execute(lambda: with_warehouse(lambda settings: commands.alerts(settings, resend)))


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
    return execute(lambda: commands.source_serve(host, port, faults))


stack_cli.add_commands(app, execute)
dashboard_cli.add_commands(app, execute, lambda command: with_warehouse(lambda _settings: command()))
