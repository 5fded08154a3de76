import io
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from pipeline.cli import commands, main
from pipeline.cli.commands import BackfillRequest
from pipeline.cli.context import execute
from pipeline.defaults import HEARTBEAT_SECONDS
from pipeline.progress import terminal_bar

COMMANDS = [
    [],
    ["run"],
    ["demo"],
    ["backfill"],
    ["gaps"],
    ["check-freshness"],
    ["alerts"],
    ["source"],
    ["source", "serve"],
    ["blocks"],
    ["blocks", "apply"],
    ["deploy"],
    ["up"],
    ["down"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: " ".join(command) or "pipeline")
def test_cli_help_works_on_every_command(command, capsys):
    assert main([*command, "--help"]) == 0

    assert capsys.readouterr().out.startswith(f"Usage: {' '.join(['pipeline', *command])} [OPTIONS]")


def test_cli_help_imports_neither_prefect_nor_numpy_nor_the_flows():
    script = (
        "import sys; from pipeline.cli import main; main(['backfill', '--help']); "
        "print(sorted(m for m in ('prefect', 'numpy', 'flows', 'psycopg') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert result.stdout.splitlines()[-1] == "[]"


def test_flow_runs_a_command_starts_heartbeat_as_the_crashed_runs_automation_expects(monkeypatch):
    """Prefect's default (180 s) is past the automation's 90 s: a long CLI backfill would be marked Crashed."""
    from prefect.settings import get_current_settings

    seen = []
    monkeypatch.delenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", raising=False)
    execute(lambda: seen.append(get_current_settings().flows.heartbeat_frequency) or 0)
    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60")
    execute(lambda: seen.append(get_current_settings().flows.heartbeat_frequency) or 0)

    assert seen == [HEARTBEAT_SECONDS, 60]


def test_every_way_a_run_starts_heartbeats_well_inside_the_crashed_runs_wait():
    root = Path(__file__).parents[2]
    within = yaml.safe_load((root / "deployments/automations/crashed-runs.yaml").read_text())["trigger"]["within"]
    job_env = yaml.safe_load((root / "prefect.yaml").read_text())["definitions"]["job_variables"]["env"]
    vm_env = dict(
        line.split("=", 1)
        for line in (root / "deployments/weather.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )

    assert int(job_env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]) == HEARTBEAT_SECONDS
    assert int(vm_env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]) == HEARTBEAT_SECONDS
    assert HEARTBEAT_SECONDS * 3 <= within  # three missed heartbeats before a run is marked Crashed


def test_cli_without_a_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2

    assert "backfill" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "--date", "2024-02-30"],
            "argument --date: date '2024-02-30' is not a valid date: expected YYYY-MM-DD",
        ),
        (["demo", "--date", "09/03/2024"], "argument --date: date '09/03/2024' is not a valid date"),
        (["gaps", "--since", "2999-01-01"], "argument --since: date 2999-01-01 is not in the past"),
        (["backfill", "--start", "2024-03-01"], "Missing option '--end'"),
        (
            ["backfill", "--start", "2024-03-01", "--end", "2024-03-02", "--reprocess", "some"],
            "argument --reprocess: invalid choice: 'some' (choose from 'missing', 'failed'",
        ),
        (["source", "serve", "--port", "http"], "argument --port:"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_cli_usage_errors_exit_2_with_one_line_naming_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)

    assert exit_info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"Usage: pipeline {argv[0] if argv[0] != 'frobnicate' else ''}".rstrip())
    assert err[-1].startswith("pipeline") and ": error: " in err[-1]
    assert message in err[-1]


def test_terminal_bar_shows_days_rows_rate_and_eta():
    out = io.StringIO()
    bar = terminal_bar(Console(file=out, width=160, force_terminal=False))
    task = bar.add_task("backfill", total=365, rows=0, rate=0.0)

    bar.update(task, completed=120, rows=2_880_000, rate=240_000.0)
    bar.console.print(bar.get_renderable())

    text = out.getvalue()
    assert "120/365 days | 2,880,000 rows | 240,000 rows/s | ETA" in text
    assert text.startswith("backfill ")


def backfill_request(monkeypatch, argv) -> BackfillRequest:
    """The request `pipeline backfill` hands to its body for `argv`.

    The body (a flow run against a Prefect server and the warehouse) cannot run in a unit test: it is
    replaced by one that records what the options became.
    """
    requests = []
    monkeypatch.setenv("PIPELINE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setattr(commands, "backfill", lambda settings, request: requests.append(request) or 0)

    assert main(["backfill", "--start", "2024-03-01", "--end", "2024-03-02", *argv]) == 0

    return requests[0]


def test_cli_backfill_spread_runs_the_backfill_with_spread(monkeypatch):
    request = backfill_request(monkeypatch, ["--spread", "--reprocess", "all"])

    assert request.flow_parameters() == {
        "start_date": date(2024, 3, 1),
        "end_date": date(2024, 3, 2),
        "reprocess": "all",
        "dry_run": False,
        "spread": True,
    }


def test_cli_backfill_runs_in_its_own_threads_without_spread(monkeypatch):
    assert backfill_request(monkeypatch, []).flow_parameters()["spread"] is False


def test_cli_backfill_help_says_what_spread_needs(capsys):
    assert main(["backfill", "--help"]) == 0

    # Click wraps the help at hyphens too: "backfill-" / "chunk".
    help_text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")
    assert "--spread" in help_text
    assert "backfill-chunk deployment" in help_text
    assert "the deployments applied (pipeline deploy) and workers up" in help_text
