"""Benchmark the pipeline against its ceilings, in one invocation, on this machine.

Stages (all by default): daily (one day × 10 and × 1,000 locations, with the lookback, split into
extract / load / dbt / fixed start-up), ceiling (binary COPY of the same rows), backfill (a year ×
1,000 locations end to end, and its COPY ceiling), baseline (30 daily runs vs one 30-day backfill),
history (a daily run after three years of history vs after a week), dbt (the daily run × 1,000
locations side by side with a bare `dbt build` CLI call on the same project and window), assets
(daily runs × 1,000 locations taking turns: the build without asset events, with them — the
default — and through prefect-dbt's PrefectDbtRunner, PIPELINE_DBT_NODES_AS_TASKS=true), spread (a
backfill of --years × --locations in one process vs spread over two process workers as backfill-chunk
flow runs, arms taking turns, per-day checksums compared), scale (the daily run at --scale-locations vs
--locations: wall and peak memory of the run's process tree).

    .venv/bin/python bench/pipeline_bench.py [--stages daily,ceiling,...] [--repeats 3]
    .venv/bin/python bench/pipeline_bench.py --stages spread,scale --years 0.05 --locations 20 \
        --scale-locations 200 --repeats 1   # a smoke run on tiny sizes

Needs a Postgres (PIPELINE_BENCH_ADMIN_URL, default the local server on 127.0.0.1:5432). Starts the
project's source server and a Prefect server (on a database of that Postgres, as on a VM) as
subprocesses; runs each measured command as its own process and samples its peak memory.
"""

import argparse
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import httpx
import psutil
import psycopg
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.settings import PREFECT_API_URL, temporary_settings
from psycopg import sql

from blocks import Warehouse
from pipeline import deploy, extract, load, stack, warehouse
from pipeline.defaults import HEARTBEAT_SECONDS, OFFLINE_ENV
from pipeline.locations import Location, read_locations
from pipeline.settings import Settings
from pipeline.spread import CHUNK_DEPLOYMENT
from pipeline.transform import dbt_args, dbt_environment, profiles_dir
from pipeline.window import Window, chunk, daily_window

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAY = date(2024, 3, 9)
BENCH_POOL = "weather-bench"
SERVER_DATABASE = "weather_bench_prefect"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_locations(path: Path, count: int) -> Path:
    lines = ["location_id,name,latitude,longitude"]
    for i in range(count):
        lines.append(f"loc{i:04d},Location {i},{-60 + (i * 7.919) % 130:.4f},{-180 + (i * 13.37) % 360:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return path


class Bench:
    def __init__(self, admin: str, work: Path):
        self.admin = admin
        self.work = work
        self.env = os.environ | {
            **OFFLINE_ENV,
            "PREFECT_HOME": str(work / "prefect"),
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PIPELINE_SOURCE_RATE_LIMIT": "",
            # The backfills run here, outside the `pipeline` command, heartbeat as every run must.
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),
        }
        self.processes: list[subprocess.Popen] = []

    def start_services(self) -> None:
        source_port, prefect_port = free_port(), free_port()
        self.processes.append(self._spawn([BIN / "pipeline", "source", "serve", "--port", str(source_port)], "source"))
        self.fresh_database(SERVER_DATABASE)
        server_env = stack.LEASE_STORAGE | {
            stack.SERVER_DATABASE_URL: stack.prefect_database_url(self.admin, SERVER_DATABASE),
            "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false",
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        }
        stack.upgrade_server_database(self.env | server_env, self.work / "prefect-migrations.log")
        self.processes.append(
            self._spawn([BIN / "prefect", "server", "start", "--port", str(prefect_port)], "prefect", server_env)
        )
        self.env["PIPELINE_SOURCE_URL"] = f"http://127.0.0.1:{source_port}"
        self.env["PREFECT_API_URL"] = f"http://127.0.0.1:{prefect_port}/api"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.env['PREFECT_API_URL']}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        raise RuntimeError("Prefect server did not start")

    def _spawn(self, command, name, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.work / f"{name}.log", "w")  # noqa: SIM115 - kept open for the process's life
        return subprocess.Popen(
            [str(c) for c in command], env=self.env | (env or {}), stdout=log, stderr=log, start_new_session=True
        )

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    def fresh_database(self, name: str) -> str:
        return warehouse.fresh_database(self.admin, name)

    def stop_process(self, process: subprocess.Popen) -> None:
        """SIGINT a process started with _spawn (a worker stops its runs on it) and wait for it."""
        process.send_signal(2)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process in self.processes:
            self.processes.remove(process)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))

    def pipeline(self, args: list[str], **env) -> tuple[float, int, str]:
        """Run `pipeline …` as its own process; returns (wall seconds, peak RSS of its process tree, output)."""
        return self.measure([str(BIN / "pipeline"), *args], **env)

    def measure(self, command: list[str], **env) -> tuple[float, int, str]:
        """Run `command` as its own process; returns (wall seconds, peak RSS of its process tree, output)."""
        args = command[1:]
        started = time.perf_counter()
        process = psutil.Popen(command, env=self.env | env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
        peak = 0
        while process.poll() is None:
            try:
                tree = [process, *process.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)
        wall = time.perf_counter() - started
        output = process.stdout.read().decode()
        if process.returncode != 0:
            raise RuntimeError(f"{Path(command[0]).name} {' '.join(args)} failed:\n{output[-3000:]}")
        return wall, peak, output


def dbt_build_cli(env: dict, dsn: str) -> float:
    """Seconds for a bare `dbt build` CLI process on the project, over the window the last run wrote."""
    project = ROOT / "dbt_project"
    local = Warehouse.from_url(dsn)
    with profiles_dir(local) as profiles:
        command = [str(BIN / "dbt"), *dbt_args(), "--project-dir", str(project), "--profiles-dir", str(profiles)]
        started = time.perf_counter()
        result = subprocess.run(command, env=env | dbt_environment(local), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dbt build failed:\n{result.stdout[-3000:]}")
    return time.perf_counter() - started


EMPTY_FLOW = "from prefect import flow\n\n@flow(name='empty')\ndef empty():\n    pass\n\nempty()\n"


def empty_flow(env: dict) -> float:
    """Seconds for a process that runs a flow doing nothing on the same Prefect server: what any flow run costs."""
    started = time.perf_counter()
    result = subprocess.run([str(BIN / "python"), "-c", EMPTY_FLOW], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the empty flow failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def copy_ceiling(
    dsn: str, source_url: str, locations: tuple[Location, ...], windows: list[Window]
) -> tuple[float, int]:
    """Seconds to binary-COPY the given windows' rows into an empty keyed table; buffers are built untimed."""
    seconds, rows = 0.0, 0
    with warehouse.connect(dsn) as conn, httpx.Client(base_url=source_url, timeout=120) as client:
        conn.execute("drop schema if exists ceiling cascade")
        conn.execute("create schema ceiling")
        conn.execute("create table ceiling.hourly_weather (like raw.hourly_weather including all)")
        conn.commit()
        statement = load.copy_statement(sql.Identifier("ceiling", "hourly_weather"))
        for window in windows:
            batches = [extract.fetch(client, batch, window) for batch in extract.batch_locations(locations, 100)]
            body = load._COPY_HEADER + b"".join(load.copy_buffer(b) for b in batches) + load._COPY_TRAILER
            started = time.perf_counter()
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
                copy.write(body)
            seconds += time.perf_counter() - started
            rows += sum(b.row_count for b in batches)
        conn.execute("drop schema ceiling cascade")
        conn.commit()
    return seconds, rows


def step_seconds(output: str) -> dict[str, float]:
    """The step timings `pipeline run` prints (`extract 1.2 s, load 0.4 s, dbt 3.4 s`), as the flow timed them."""
    timings = {step: float(value) for step, value in re.findall(r"\b(extract|load|dbt) ([0-9.]+) s\b", output)}
    if "dbt" not in timings:
        raise RuntimeError(f"no step timings in:\n{output[-2000:]}")
    return timings


def mb(value: float) -> str:
    return f"{value / 2**20:,.0f} MB"


ASSET_MODES = {
    "build only (no asset events)": {"PIPELINE_ASSET_EVENTS": "false"},
    "build + asset events (default)": {},
    "PrefectDbtRunner (PIPELINE_DBT_NODES_AS_TASKS)": {"PIPELINE_DBT_NODES_AS_TASKS": "true"},
}


def assets_stage(bench: "Bench", locations: Path, repeats: int) -> None:
    """Daily runs × 1,000 locations, the modes taking turns so the machine's load falls on each alike."""
    dsn = bench.fresh_database("weather_bench")
    env = {"PIPELINE_DATABASE_URL": dsn, "PIPELINE_LOCATIONS_FILE": str(locations)}
    bench.pipeline(["run", "--date", str(DAY - timedelta(days=1))], **env)  # warm-up: schema, dbt parse
    walls: dict[str, list[float]] = {mode: [] for mode in ASSET_MODES}
    dbt: dict[str, list[float]] = {mode: [] for mode in ASSET_MODES}
    day = DAY
    for _ in range(repeats):
        for mode, extra in ASSET_MODES.items():
            wall, _, output = bench.pipeline(["run", "--date", str(day)], **env, **extra)
            walls[mode].append(wall)
            dbt[mode].append(step_seconds(output)["dbt"])
            day += timedelta(days=1)
    base = list(ASSET_MODES)[0]
    base_wall, base_dbt = statistics.median(walls[base]), statistics.median(dbt[base])
    print(f"assets: daily run × 1,000 locations, medians of {repeats}, modes taking turns")
    for mode in ASSET_MODES:
        wall, step = statistics.median(walls[mode]), statistics.median(dbt[mode])
        print(
            f"  {mode}: daily run {wall:.1f} s ({wall / base_wall:.2f}×), dbt build + publish {step:.2f} s "
            f"({step / base_dbt:.2f}×); runs {', '.join(f'{w:.1f}' for w in walls[mode])}"
        )
    bench.drop_database("weather_bench")


# The backfill flow called in a process of its own, as `pipeline backfill` calls it; argv: first, last, spread.
BACKFILL = (
    "import sys\n"
    "from datetime import date\n"
    "from flows.backfill import backfill_weather\n"
    "backfill_weather(date.fromisoformat(sys.argv[1]), date.fromisoformat(sys.argv[2]), reprocess='all',"
    " spread=sys.argv[3] == 'spread')\n"
)


def state(dsn: str) -> tuple[dict, dict]:
    with psycopg.connect(dsn) as conn:
        return warehouse.day_checksums(conn, "raw"), warehouse.day_checksums(conn, "mart")


def chunk_runs() -> list:
    """Every run of the backfill-chunk deployment on the bench's server (the API pages by 200)."""
    runs: list = []
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(CHUNK_DEPLOYMENT)
        only = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        while page := client.read_flow_runs(deployment_filter=only, limit=200, offset=len(runs)):
            runs.extend(page)
    return runs


def spread_stage(bench: "Bench", locations: Path, count: int, years: float, workers: int, repeats: int) -> None:
    """A backfill in one process vs spread over `workers` process workers on this machine, taking turns."""
    days = max(1, round(365 * years))
    window = Window(DAY - timedelta(days=days), DAY - timedelta(days=1))
    dsn = bench.fresh_database("weather_bench")
    env = {"PIPELINE_DATABASE_URL": dsn, "PIPELINE_LOCATIONS_FILE": str(locations)}
    settings = Settings(database_url=dsn, source_url=bench.env["PIPELINE_SOURCE_URL"], source_rate_limit="")
    with temporary_settings(updates={PREFECT_API_URL: bench.env["PREFECT_API_URL"]}):
        deploy.configure_server(settings, BENCH_POOL, project_dir=ROOT, say=lambda _line: None)
    # Each worker takes its share of the chunks in flight: one worker polling first would take them all.
    per_worker = -(-settings.backfill_workers // workers)
    started = [
        bench._spawn(
            [*stack.worker_command(BENCH_POOL, str(BIN / "python")), "--name", f"bench-{n}"]
            + ["--limit", str(per_worker)],
            f"worker-{n}",
            env | {"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1"},
        )
        for n in range(workers)
    ]
    command = [str(BIN / "python"), "-c", BACKFILL, str(window.first), str(window.last)]
    try:
        bench.measure([*command, "in-process"], **env)  # warm-up: schema, every day loaded once, dbt parse
        walls: dict[str, list[float]] = {"in-process": [], "spread": []}
        states: dict[str, list] = {"in-process": [], "spread": []}
        for _ in range(repeats):
            for arm in walls:
                wall, _, _ = bench.measure([*command, arm], **env)
                walls[arm].append(wall)
                states[arm].append(state(dsn))
    finally:
        for worker in started:
            bench.stop_process(worker)
    same = all(snapshot == states["in-process"][0] for arm in states for snapshot in states[arm])
    with temporary_settings(updates={PREFECT_API_URL: bench.env["PREFECT_API_URL"]}):
        runs = [run for run in chunk_runs() if run.start_time and run.end_time]
    taken = Counter(run.labels.get("prefect.worker.name", "?") for run in runs)
    # Where a chunk run's time goes: from its creation to Running (the worker's poll, a process,
    # imports, the pull step), then running.
    starting = statistics.median((run.start_time - run.created).total_seconds() for run in runs)
    running = statistics.median((run.end_time - run.start_time).total_seconds() for run in runs)
    one, spread = statistics.median(walls["in-process"]), statistics.median(walls["spread"])
    print(
        f"spread: backfill {days} days × {count:,} locations ({days * 24 * count:,} rows), reprocess all, "
        f"median of {repeats}, arms taking turns: in one process {one:.1f} s | spread over {workers} process "
        f"workers {spread:.1f} s | spread / in-process = {spread / one:.2f}× (target ≤ 1.15×); "
        f"identical per-day checksums across arms: {same}; chunk runs by worker "
        f"{', '.join(f'{name} {count}' for name, count in sorted(taken.items()))} ({len(runs) // repeats} a "
        f"backfill), median {starting:.1f} s from creation to Running, {running:.1f} s running; runs in-process "
        f"{', '.join(f'{w:.1f}' for w in walls['in-process'])}, spread {', '.join(f'{w:.1f}' for w in walls['spread'])}"
    )
    bench.drop_database("weather_bench")


def fetch_stage(bench: "Bench", locations: Path, repeats: int) -> None:
    """A half-year backfill (reprocess all) with a window's requests one at a time vs `fetch_concurrency` (4)
    at a time, taking turns: what the concurrency does where chunks already run side by side."""
    window = Window(date(2023, 1, 1), date(2023, 6, 30))
    dsn = bench.fresh_database("weather_bench")
    command = ["backfill", "--start", str(window.first), "--end", str(window.last), "--reprocess", "all", "--yes"]
    env = {"PIPELINE_DATABASE_URL": dsn, "PIPELINE_LOCATIONS_FILE": str(locations)}
    bench.pipeline(command, **env)  # warm-up: schema, every day loaded once
    arms = {"one at a time": "1", "four at a time (default)": "4"}
    walls: dict[str, list[float]] = {arm: [] for arm in arms}
    for _ in range(repeats):
        for arm, concurrency in arms.items():
            wall, _, _ = bench.pipeline(command, **env, PIPELINE_FETCH_CONCURRENCY=concurrency)
            walls[arm].append(wall)
    base = statistics.median(walls["one at a time"])
    print(f"fetch: backfill {len(window)} days × 1,000 locations in one process, reprocess all, median of {repeats}")
    for arm, values in walls.items():
        median = statistics.median(values)
        print(f"  requests {arm}: {median:.1f} s ({median / base:.2f}×); runs {', '.join(f'{w:.1f}' for w in values)}")
    bench.drop_database("weather_bench")


def scale_stage(bench: "Bench", sizes: dict[int, Path], repeats: int) -> None:
    """The daily run at each size, sizes taking turns: wall and peak RSS of the run's process tree."""
    envs = {}
    for count, path in sizes.items():
        dsn = bench.fresh_database(f"weather_bench_{count}")
        envs[count] = {"PIPELINE_DATABASE_URL": dsn, "PIPELINE_LOCATIONS_FILE": str(path)}
        bench.pipeline(["run", "--date", str(DAY - timedelta(days=1))], **envs[count])  # warm-up: schema, dbt parse
    walls: dict[int, list[float]] = {count: [] for count in sizes}
    peaks: dict[int, list[int]] = {count: [] for count in sizes}
    steps: dict[int, list[dict[str, float]]] = {count: [] for count in sizes}
    for offset in range(repeats):
        for count in sizes:
            wall, peak, output = bench.pipeline(["run", "--date", str(DAY + timedelta(days=offset))], **envs[count])
            walls[count].append(wall), peaks[count].append(peak), steps[count].append(step_seconds(output))
    base, top = min(sizes), max(sizes)
    print(f"scale: daily run (6-day window) by locations, median of {repeats}, sizes taking turns")
    for count in sizes:
        med = {step: statistics.median(timing[step] for timing in steps[count]) for step in steps[count][0]}
        wall = statistics.median(walls[count])
        print(
            f"  × {count:,} locations ({count * 144:,} rows): wall {wall:.1f} s, "
            f"peak {mb(statistics.median(peaks[count]))} (max {mb(max(peaks[count]))}) | extract "
            f"{med['extract']:.2f} s, load {med['load']:.2f} s, dbt build + publish {med['dbt']:.1f} s, "
            f"the rest (process, imports, Prefect, dbt parse) {wall - sum(med.values()):.1f} s"
        )
    print(
        f"  {top:,} / {base:,}: wall {statistics.median(walls[top]):.1f} s (target ≤ 30 s), memory "
        f"{statistics.median(peaks[top]) / statistics.median(peaks[base]):.2f}× (target ≤ 1.5×)"
    )
    for count in sizes:
        bench.drop_database(f"weather_bench_{count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="daily,ceiling,backfill,baseline,history,dbt,assets,fetch,spread,scale")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--years", type=float, default=2.0, help="spread: the backfill's length")
    parser.add_argument("--locations", type=int, default=1000, help="spread and scale: locations (scale's base)")
    parser.add_argument("--scale-locations", type=int, default=10000, help="scale: the larger daily run")
    parser.add_argument("--workers", type=int, default=2, help="spread: process workers on the pool")
    args = parser.parse_args()
    stages = set(args.stages.split(","))
    admin = os.environ.get("PIPELINE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    work = Path(tempfile.mkdtemp(prefix="weather-bench-"))
    bench = Bench(admin, work)
    small, large = write_locations(work / "l10.csv", 10), write_locations(work / "l1000.csv", 1000)
    print(
        f"# machine: {platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
        f"{mb(psutil.virtual_memory().total)} RAM, Python {platform.python_version()}"
    )
    bench.start_services()
    try:
        if "daily" in stages or "ceiling" in stages:
            for label, path in (("10", small), ("1000", large)):
                dsn = bench.fresh_database("weather_bench")
                env = {"PIPELINE_DATABASE_URL": dsn, "PIPELINE_LOCATIONS_FILE": str(path)}
                bench.pipeline(["run", "--date", str(DAY - timedelta(days=1))], **env)  # warm-up: schema, dbt parse
                walls, peaks, steps = [], [], []
                # Consecutive days, as the schedule runs them: each run loads one new day and
                # re-fetches five lookback days it has already loaded.
                for offset in range(args.repeats):
                    day = DAY + timedelta(days=offset)
                    wall, peak, output = bench.pipeline(["run", "--date", str(day)], **env)
                    walls.append(wall), peaks.append(peak), steps.append(step_seconds(output))
                med = {k: statistics.median(s[k] for s in steps) for k in steps[0]}
                wall = statistics.median(walls)
                fixed = wall - med["extract"] - med["load"] - med["dbt"]
                print(
                    f"daily × {label} locations (6-day window, {int(label) * 144:,} rows), median of {args.repeats}: "
                    f"wall {wall:.1f} s, peak {mb(max(peaks))} | extract {med['extract']:.2f} s, "
                    f"load {med['load']:.2f} s, dbt build + publish {med['dbt']:.1f} s, "
                    f"fixed start-up and orchestration (process, imports, Prefect, dbt parse) {fixed:.1f} s"
                )
                if "ceiling" in stages:
                    seconds, rows = copy_ceiling(
                        dsn, bench.env["PIPELINE_SOURCE_URL"], read_locations(path), [daily_window(DAY, 5)]
                    )
                    print(
                        f"  COPY ceiling for the same {rows:,} rows: {seconds:.2f} s ({rows / seconds:,.0f} rows/s); "
                        f"load / ceiling = {med['load'] / seconds:.2f}×"
                    )
                bench.drop_database("weather_bench")
        if "assets" in stages:
            assets_stage(bench, large, args.repeats)
        if "fetch" in stages:
            fetch_stage(bench, large, args.repeats)
        if "spread" in stages or "scale" in stages:
            sized = write_locations(work / f"l{args.locations}.csv", args.locations)
        if "spread" in stages:
            spread_stage(bench, sized, args.locations, args.years, args.workers, args.repeats)
        if "scale" in stages:
            scaled = write_locations(work / f"l{args.scale_locations}.csv", args.scale_locations)
            scale_stage(bench, {args.locations: sized, args.scale_locations: scaled}, args.repeats)
        if "backfill" in stages:
            dsn = bench.fresh_database("weather_bench")
            env = {"PIPELINE_DATABASE_URL": dsn, "PIPELINE_LOCATIONS_FILE": str(large)}
            year = Window(date(2023, 1, 1), date(2023, 12, 31))
            wall, peak, output = bench.pipeline(
                ["backfill", "--start", str(year.first), "--end", str(year.last), "--yes"], **env
            )
            rows = 365 * 24 * 1000
            print(
                f"backfill year × 1,000 locations ({rows:,} rows) end to end, dbt and tests included: "
                f"wall {wall:.1f} s, {rows / wall:,.0f} rows/s, peak {mb(peak)}"
            )
            print("  " + output.strip().splitlines()[-1])
            seconds, copied = copy_ceiling(
                dsn, bench.env["PIPELINE_SOURCE_URL"], read_locations(large), chunk(year, 14)
            )
            print(
                f"  COPY ceiling for the same {copied:,} rows: {seconds:.1f} s ({copied / seconds:,.0f} rows/s); "
                f"end to end / ceiling = {wall / seconds:.2f}×"
            )
            bench.drop_database("weather_bench")
        if "baseline" in stages:
            days = Window(date(2024, 1, 1), date(2024, 1, 30))
            dsn = bench.fresh_database("weather_bench")
            env = {"PIPELINE_DATABASE_URL": dsn, "PIPELINE_LOCATIONS_FILE": str(large), "PIPELINE_LOOKBACK_DAYS": "0"}
            started = time.perf_counter()
            for day in days.days:
                bench.pipeline(["run", "--date", str(day)], **env)
            naive = time.perf_counter() - started
            with psycopg.connect(dsn) as conn:
                naive_state = warehouse.day_checksums(conn, "raw"), warehouse.day_checksums(conn, "mart")
            dsn = bench.fresh_database("weather_bench")
            env["PIPELINE_DATABASE_URL"] = dsn
            backfill, backfill_peak, _ = bench.pipeline(
                ["backfill", "--start", str(days.first), "--end", str(days.last)], **env
            )
            with psycopg.connect(dsn) as conn:
                same = naive_state == (warehouse.day_checksums(conn, "raw"), warehouse.day_checksums(conn, "mart"))
            print(
                f"30 days × 1,000 locations: 30 daily runs {naive:.1f} s, one backfill {backfill:.1f} s, "
                f"ratio {naive / backfill:.1f}×; identical per-day checksums: {same}; backfill peak {mb(backfill_peak)}"
            )
            bench.drop_database("weather_bench")
        if "history" in stages:
            results = {}
            for label, first in (("one week", DAY - timedelta(days=7)), ("three years", DAY - timedelta(days=3 * 365))):
                dsn = bench.fresh_database("weather_bench")
                env = {"PIPELINE_DATABASE_URL": dsn, "PIPELINE_LOCATIONS_FILE": str(large)}
                bench.pipeline(
                    ["backfill", "--start", str(first), "--end", str(DAY - timedelta(days=1)), "--yes"], **env
                )
                # Three years of history in production were vacuumed and analysed long ago; without
                # this the runs below would share the machine with autovacuum working through the load.
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("vacuum analyze")
                walls, steps = [], []
                for _ in range(args.repeats):
                    wall, _, output = bench.pipeline(["run", "--date", str(DAY)], **env)
                    walls.append(wall), steps.append(step_seconds(output))
                med = {k: statistics.median(s[k] for s in steps) for k in steps[0]}
                results[label] = (statistics.median(walls), med["dbt"])
                wall, dbt = results[label]
                print(
                    f"daily × 1,000 after {label} of history, median of {args.repeats}: wall {wall:.1f} s | "
                    f"extract {med['extract']:.2f} s, load {med['load']:.2f} s, dbt {dbt:.1f} s, "
                    f"rest {wall - med['extract'] - med['load'] - dbt:.1f} s"
                )
                bench.drop_database("weather_bench")
            print(
                f"  three years / one week: wall {results['three years'][0] / results['one week'][0]:.2f}×, "
                f"dbt {results['three years'][1] / results['one week'][1]:.2f}×"
            )
        if "dbt" in stages:
            dsn = bench.fresh_database("weather_bench")
            env = {"PIPELINE_DATABASE_URL": dsn, "PIPELINE_LOCATIONS_FILE": str(large), "PIPELINE_LOOKBACK_DAYS": "5"}
            bench.pipeline(["run", "--date", str(DAY - timedelta(days=1))], **env)  # warm-up: schema, dbt parse
            walls, dbts, clis, empties = [], [], [], []
            # Alternating, so all see the same machine: the daily run for a day, then a bare
            # `dbt build` of the window it just built (same project, same partial-parse state),
            # then a flow that does nothing (Prefect's own cost of a run: import, flow run, exit).
            for offset in range(args.repeats):
                wall, _, output = bench.pipeline(["run", "--date", str(DAY + timedelta(days=offset))], **env)
                walls.append(wall), dbts.append(step_seconds(output)["dbt"])
                clis.append(dbt_build_cli(bench.env, dsn))
                empties.append(empty_flow(bench.env))
            wall, dbt, cli = statistics.median(walls), statistics.median(dbts), statistics.median(clis)
            empty = statistics.median(empties)
            print(
                f"daily × 1,000 locations (6-day window) vs bare `dbt build`, median of {args.repeats}: "
                f"daily run wall {wall:.1f} s (its dbt build + publish {dbt:.1f} s) | "
                f"`dbt {' '.join(dbt_args())}` CLI wall {cli:.1f} s | empty flow run {empty:.1f} s | "
                f"daily run / dbt build = {wall / cli:.2f}×, in-flow dbt step / dbt build CLI = {dbt / cli:.2f}×, "
                f"daily run / (empty flow run + dbt build) = {wall / (empty + cli):.2f}×"
            )
            bench.drop_database("weather_bench")
    finally:
        bench.stop()
        bench.drop_database(SERVER_DATABASE)


if __name__ == "__main__":
    main()
