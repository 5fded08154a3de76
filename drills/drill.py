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

Run as `python -m drills.drill` from the project's root, or as `python drills/drill.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:
    # Run as a script, Python puts drills/ first on the path: the project's root lets `drills` import as a package.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import shutil
import tempfile
import time

from drills import compare, report, scenarios
from drills.cluster import Cluster
from drills.runs import Drill


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="a smaller drill, as CI runs it")
    parser.add_argument("--only", help="comma-separated words; run the scenarios whose name contains one")
    parser.add_argument("--seed", type=int, default=20240301)
    args = parser.parse_args(argv)
    size = scenarios.SHORT if args.short else scenarios.FULL
    chosen = scenarios.select(scenarios.table(size, args.seed), args.short, args.only)
    work = Path(tempfile.mkdtemp(prefix="weather-drill-"))
    print(f"# logs and data in {work}", flush=True)
    started = time.perf_counter()
    outcomes = []
    with Cluster(work) as cluster:
        drill = Drill(cluster, size, args.seed)
        window = size.range
        soak = size.soak != window and any("soak" in scenario.name for scenario in chosen)
        print(f"# drill: {size.locations} locations, {window}; reference run …", flush=True)
        drill.expected = compare.reference(drill, [window, size.soak] if soak else [window])
        print(report.HEADER, flush=True)
        for scenario in chosen:
            outcomes.append(scenario.run(drill))
            print(report.format_row(outcomes[-1]), flush=True)
    print(report.summary(outcomes, time.perf_counter() - started))
    failed = report.differing(outcomes)
    if failed:
        print(f"differs: {'; '.join(failed)}\nlogs and data kept in {work}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
