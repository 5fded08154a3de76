"""The commands' bodies: each calls the module that owns its rule and prints the outcome; exit codes here."""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from pipeline.cli import output
from pipeline.cli.context import command_resources

if TYPE_CHECKING:
    from pipeline.settings import Settings
    from pipeline.summary import RunSummary


@dataclass(frozen=True)
class BackfillRequest:
    """`pipeline backfill`'s options."""

    start: date
    end: date
    reprocess: str = "missing"
    dry_run: bool = False
    yes: bool = False
    spread: bool = False

    def flow_parameters(self) -> dict:
        """The backfill flow's parameters for this request."""
        return {
            "start_date": self.start,
            "end_date": self.end,
            "reprocess": self.reprocess,
            "dry_run": self.dry_run,
            "spread": self.spread,
        }


def finished(state, command: str) -> "RunSummary | None":
    """The flow's result, or None after printing the one-line reason it failed."""
    if state.is_completed():
        return state.result()
    from pipeline.errors import first_line

    result = state.result(raise_on_failure=False)
    output.failed(command, first_line(result) if isinstance(result, BaseException) else str(state.message))
    return None


def run_daily(settings: "Settings", day: date | None) -> int:
    from pipeline.locations import read_locations

    # Bad input is refused here, before a flow run exists, with the error alone and no traceback.
    read_locations(settings.locations_file)
    from flows.daily import daily_weather

    summary = finished(daily_weather(logical_date=day, return_state=True), "run")
    if summary is None:
        return 1
    output.run_succeeded(summary)
    return 0


def backfill(settings: "Settings", request: BackfillRequest) -> int:
    from pipeline.locations import read_locations
    from pipeline.window import requested_range

    requested_range(request.start, request.end, settings.backfill_max_days, request.yes)
    read_locations(settings.locations_file)
    if request.spread and not request.dry_run:
        from pipeline.spread import require_chunk_deployment

        require_chunk_deployment()
    from flows.backfill import backfill_weather

    summary = finished(backfill_weather(**request.flow_parameters(), return_state=True), "backfill")
    if summary is None:
        return 1
    print(summary.plan)
    if request.dry_run:
        return 0
    if summary.stopped:
        output.backfill_stopped(summary)
        return 3
    output.backfill_succeeded(summary)
    return 0


def gaps(settings: "Settings", since: date | None) -> int:
    from pipeline import ledger, outbox
    from pipeline.backfill import gaps as find_gaps
    from pipeline.gaps import GapReport, expected_window
    from pipeline.locations import read_locations

    resources = command_resources(settings)
    expected = expected_window(since, datetime.now(UTC).date())
    active = [location.location_id for location in read_locations(resources.settings.locations_file)]
    with resources.warehouse.connect() as conn:
        found = GapReport(expected, len(active), *find_gaps(expected, ledger.status(conn, expected), active))
    outbox.flush(resources)
    output.gaps(found)
    return 1 if found else 0


def check_freshness(settings: "Settings", day: date | None) -> int:
    # Not a flow run: the systemd timer must alert with no Prefect server or worker up.
    from pipeline import alerts, freshness

    resources = command_resources(settings)
    day = day or alerts.due_logical_date(datetime.now(UTC), resources.settings.deadline)
    lookup = freshness.bounded_lookup(resources.settings.prefect_api_timeout_seconds)
    result = freshness.check(resources, day, freshness.DAILY_DEPLOYMENT, lookup)
    if not result.late:
        print(f"{result.logical_date}: landed")
        return 0
    alerted = "alert sent" if result.alerted else "already alerted"
    print(f"{result.logical_date}: LATE (daily run: {result.run_state}); {alerted}")
    return 1


def alerts(settings: "Settings", resend: int | None = None) -> int:
    from pipeline import outbox

    resources = command_resources(settings)
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
    output.undelivered(pending)
    return 1


def source_serve(host: str, port: int, faults: str | None) -> int:
    from pipeline import source_server

    plan = source_server.FaultPlan.parse(faults) if faults else source_server.FaultPlan.from_env()
    source_server.serve(host, port, plan)
    return 0


def demo(settings: "Settings", day: date | None, verbose: bool) -> int:
    from pipeline import demo as quickstart

    return quickstart.run(settings, day, quiet=not verbose)
