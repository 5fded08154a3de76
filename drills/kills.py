"""Scenarios where the run is cut short: SIGKILLs, a Postgres restart, a killed worker, runs racing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Crashed

from drills.cluster import POOL, Warehouse
from drills.compare import compare
from drills.report import Outcome
from drills.runs import MAX_RUNS, Drill, backfill_args, exited, finish, innermost, kill_when, wait_for
from pipeline import deploy, processes
from pipeline.settings import Settings
from pipeline.source_server import FaultPlan


@contextmanager
def kill_point(drill: Drill, db: Warehouse, phase: str) -> Iterator[tuple[Callable[[], bool], float]]:
    """When to kill a backfill in `phase` (extract, load or dbt), and how long to wait after that."""
    if phase == "extract":
        # Slow answers stretch the extract so the kill lands inside it.
        drill.source.faults = FaultPlan(slow=1.0, slow_seconds=0.1)
        after = drill.rng.randint(1, 6)
        yield (lambda: drill.source.requests >= after), 0.0
    elif phase == "load":
        with drill.cluster.loading(db) as ready:
            yield ready, 0.0
    else:
        with drill.cluster.transforming(db) as ready:
            yield ready, drill.rng.uniform(0.0, 2.0)


def sigkill(drill: Drill, outcome: Outcome, phase: str) -> None:
    """SIGKILL a backfill's process group in `phase`, then rerun it; up to three tries to land inside it."""
    window = drill.size.range
    for _attempt in range(3):
        db = drill.cluster.database("drill_scenario")
        with kill_point(drill, db, phase) as (ready, delay):
            drill.source.reset_counters()
            killed = kill_when(drill.spawn(db, backfill_args(window)), ready, delay)
        outcome.runs += 1
        drill.source.faults = FaultPlan()
        drill.source.reset_counters()
        if killed:
            outcome.faults += 1
            drill.converge(db, backfill_args(window), outcome)
            compare(drill, db, window.days, outcome)
            return
    outcome.note = f"the run finished before the kill point ({phase}) three times"


def postgres_restart(drill: Drill, outcome: Outcome) -> None:
    """Restart Postgres while a load holds its transaction; up to three tries to land inside one."""
    window = drill.size.range
    for _attempt in range(3):
        db = drill.cluster.database("drill_scenario")
        with drill.cluster.loading(db) as ready:
            process = drill.spawn(db, backfill_args(window))
            if wait_for(ready, exited(process)) and process.poll() is None:
                drill.cluster.restart_postgres()
                outcome.faults += 1
        first = finish(process, backfill_args(window))
        outcome.runs += 1
        drill.converge(db, backfill_args(window), outcome)
        compare(drill, db, window.days, outcome)
        if "load failed" in first.reason:
            outcome.note = f"first run failed: {innermost(first.reason)}"
            return
    outcome.identical = False
    outcome.note = f"no restart landed inside a load in three tries; last: {first.reason or 'completed'}"


def worker_kill(drill: Drill, outcome: Outcome) -> None:
    """The deployment form: SIGKILL the process worker and its flow run mid-load, start it again, re-run."""
    window = drill.size.range
    db = drill.cluster.database("drill_deployed")
    settings = Settings(database_url=db.dsn, source_url=drill.source.url, source_rate_limit="")
    env = drill.env(db, PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="1")
    with temporary_settings(updates={PREFECT_API_URL: drill.cluster.api_url}), get_client(sync_client=True) as client:
        deploy.configure_server(settings, POOL, say=lambda _line: None)
        deployment = client.read_deployment_by_name("backfill-weather/backfill")
        parameters = {"start_date": window.first.isoformat(), "end_date": window.last.isoformat()}

        def final(run_id) -> Callable[[], bool]:
            return lambda: client.read_flow_run(run_id).state.is_final()

        worker = drill.cluster.start_worker(env)
        try:
            run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
            with drill.cluster.loading(db) as ready:
                if not wait_for(ready, final(run.id)):
                    outcome.note = "the run finished before the kill point"
                    return
                processes.kill_tree(worker.pid)
            outcome.runs += 1
            outcome.faults += 1
            # What the server does once the dead run's heartbeats stop (weather-crashed-runs).
            client.set_flow_run_state(run.id, Crashed(message="worker killed by the drill"), force=True)
            worker = drill.cluster.start_worker(env)
            for _ in range(MAX_RUNS):
                rerun = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
                outcome.runs += 1
                if wait_final(client, rerun.id).state.is_completed():
                    break
        finally:
            processes.stop_process(worker)
    compare(drill, db, window.days, outcome)


def wait_final(client, run_id, timeout: float = 600.0):
    deadline = time.monotonic() + timeout
    while True:
        run = client.read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"flow run {run_id} still {run.state_name} after {timeout:.0f} s")
        time.sleep(0.5)


def concurrent(drill: Drill, outcome: Outcome) -> None:
    """Two daily runs of the same day and a backfill over the same days, all at once."""
    window = drill.size.range
    db = drill.cluster.database("drill_scenario")
    commands = [["run", "--date", window.last.isoformat()]] * 2 + [backfill_args(window)]
    spawned = [drill.spawn(db, args) for args in commands]
    outcome.runs += len(spawned)
    failed = [run for run in (finish(p, args) for args, p in zip(commands, spawned, strict=True)) if not run.ok]
    for run in failed:
        drill.converge(db, run.args, outcome)
    compare(drill, db, window.days, outcome)
    if failed:
        outcome.note = f"{len(failed)} of 3 needed a rerun: {failed[0].reason}"
