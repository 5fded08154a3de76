"""The `pipeline` command: bad input exits non-zero with one clear line; the demo runs from nothing."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from pipeline.cli import main


def raw_schema_exists(database_url) -> bool:
    with psycopg.connect(database_url) as conn:
        return conn.execute("select exists (select from pg_namespace where nspname = 'raw')").fetchone()[0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2024-02-30", "argument --date: date '2024-02-30' is not a valid date: expected YYYY-MM-DD"),
        ("2024-13-01", "argument --date: date '2024-13-01' is not a valid date"),
        ("", "argument --date: date '' is not a valid date"),
        ("{today}", "is not in the past"),
        ("{in_30_days}", "is not in the past"),
    ],
)
def test_run_rejects_a_bad_date_before_doing_anything(pipeline_env, capsys, value, message):
    # Today is read when the test runs, not when it is collected: a run can cross midnight UTC.
    today = datetime.now(UTC).date()
    value = value.format(today=today, in_30_days=today + timedelta(days=30))
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--date", value])

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not raw_schema_exists(pipeline_env)


@pytest.mark.parametrize(
    "command", [["run", "--date", "2024-03-09"], ["backfill", "--start", "2024-03-01", "--end", "2024-03-09"]]
)
def test_an_unreadable_locations_file_fails_with_one_line_before_any_run_and_writes_nothing(
    pipeline_env, monkeypatch, capsys, tmp_path, command
):
    monkeypatch.setenv("PIPELINE_LOCATIONS_FILE", str(tmp_path / "nowhere.csv"))

    assert main(command) == 2

    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"pipeline: locations file {tmp_path / 'nowhere.csv'}: cannot be read "
        f"([Errno 2] No such file or directory: '{tmp_path / 'nowhere.csv'}')"
    ]
    assert not raw_schema_exists(pipeline_env)


def test_spread_backfill_without_the_chunk_deployment_says_what_it_needs_and_runs_nothing(pipeline_env, capsys):
    # The test server has no deployments, as a server before `pipeline deploy` has none.
    assert main(["backfill", "--start", "2024-03-01", "--end", "2024-03-09", "--spread"]) == 2

    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "pipeline: --spread needs the backfill-chunk/backfill-chunk deployment on the Prefect server in"
        " PREFECT_API_URL (apply the deployments with `pipeline deploy`) and workers on its pool; it has none"
    ]
    assert not raw_schema_exists(pipeline_env)


def test_run_with_a_dsn_that_does_not_connect_names_the_server_but_not_the_password(pipeline_env, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_DATABASE_URL", "postgresql://etl:hunter2@127.0.0.1:1/warehouse")

    assert main(["run", "--date", "2024-03-09"]) == 1

    err = capsys.readouterr().err
    assert "cannot connect to the warehouse at etl@127.0.0.1:1/warehouse" in err
    assert "hunter2" not in err


def test_run_succeeds_and_says_what_it_did(pipeline_env, capsys):
    assert main(["run", "--date", "2024-03-09"]) == 0

    out = capsys.readouterr().out
    assert "pipeline run succeeded: logical date 2024-03-09, window 2024-03-04..2024-03-09, 720 rows loaded" in out
    # Counts and timings as a person reads them, not as Python prints a dict.
    assert re.search(
        r"dbt tests \d+ pass; extract [\d.]+ s, load [\d.]+ s, dbt [\d.]+ s$", out.strip().splitlines()[-1]
    )


def test_demo_runs_end_to_end_on_a_fresh_machine():
    """The quickstart: no Prefect server, a fresh Prefect home, no warehouse, no source configured."""
    # Outside pytest's temporary root: every pytest start resets that root to mode 0700, which
    # would lock out the unprivileged user the embedded Postgres runs as under root.
    tmp_path = Path(tempfile.mkdtemp(prefix="weather-demo-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "PREFECT_"))}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PIPELINE_DATA_DIR": str(tmp_path / "data")}
    pipeline = Path(sys.executable).with_name("pipeline")

    result = subprocess.run(
        [str(pipeline), "demo", "--date", "2024-03-09"], env=env, capture_output=True, text=True, timeout=400
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pipeline run succeeded: logical date 2024-03-09" in result.stdout
    assert "Amsterdam" in result.stdout
    # A newcomer reads a traceback, an ERROR or prefect-dbt's unnamed task lines as "broken".
    for noise in ("Traceback", "ERROR", "Task run None", "Task run 'dbt-"):
        assert noise not in output, output[-3000:]
    assert result.stdout.rstrip().splitlines()[-1].startswith("next: the run, its steps and dbt's log")
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_gaps_without_a_configured_warehouse_uses_the_embedded_local_postgres():
    """The CLI, unlike a deployment run, starts the local warehouse when none is configured."""
    # Outside pytest's temporary root, for the embedded server's unprivileged user (see the demo test).
    tmp_path = Path(tempfile.mkdtemp(prefix="weather-gaps-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "PREFECT_"))}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PIPELINE_DATA_DIR": str(tmp_path / "data")}
    since = datetime.now(UTC).date() - timedelta(days=2)
    pipeline = Path(sys.executable).with_name("pipeline")

    result = subprocess.run(
        [str(pipeline), "gaps", "--since", str(since)], env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 1, result.stderr[-3000:]
    assert f"checked {since}" in result.stdout
    assert "missing:    " in result.stdout
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
