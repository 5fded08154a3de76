"""The drill's scenarios, in order: what each breaks and how it recovers; the short form keeps one of each family."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import partial

from drills import alerts, faults, hostile, kills, lost_host
from drills.report import Outcome
from drills.runs import Drill, Size
from pipeline.source_server import FaultPlan
from pipeline.window import Window

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

# A "slow" answer takes 2 s: with these settings, a timeout.
TIMEOUTS = {"PIPELINE_HTTP_TIMEOUT_SECONDS": "1"}


@dataclass(frozen=True)
class Scenario:
    name: str
    body: Callable[[Drill, Outcome], None]
    short: bool = False

    def run(self, drill: Drill) -> Outcome:
        """The body on a fault-free source; a scenario that breaks is a failed one, and its note says why."""
        outcome = Outcome(self.name)
        drill.source.faults = FaultPlan()
        drill.source.reset_counters()
        started = time.perf_counter()
        try:
            self.body(drill, outcome)
        except Exception as exc:
            outcome.identical = False
            outcome.note = f"drill error: {type(exc).__name__}: {exc}"[:200]
        outcome.recover_seconds = time.perf_counter() - started
        outcome.faults += sum(drill.source.faults_injected.values())
        return outcome


def table(size: Size, seed: int) -> list[Scenario]:
    window = size.range

    def api(plan: FaultPlan, over: Window = window, env: dict[str, str] | None = None):
        return partial(faults.api_faults, plan=plan, window=over, env=env or {})

    def payload(fault: str, expect: str):
        return partial(faults.bad_payload, fault=fault, expect=expect)

    mixed = FaultPlan(server_error=0.15, rate_limited=0.1, slow=0.1, slow_seconds=2, reset=0.15, seed=seed)
    soak = FaultPlan(server_error=0.04, rate_limited=0.03, reset=0.02, slow=0.01, slow_seconds=2, seed=seed)
    return [
        Scenario("API 5xx at 50 %", api(FaultPlan(server_error=0.5, seed=seed))),
        Scenario("API 429 per-minute limit at 50 %", api(FaultPlan(rate_limited=0.5, seed=seed))),
        Scenario(
            "API timeouts at 30 % (answer after 2 s, client waits 1 s)",
            api(FaultPlan(slow=0.3, slow_seconds=2, seed=seed), env=TIMEOUTS),
        ),
        Scenario("API slow answers at 50 % (0.5 s)", api(FaultPlan(slow=0.5, slow_seconds=0.5, seed=seed))),
        Scenario("API connection resets at 50 %", api(FaultPlan(reset=0.5, seed=seed))),
        Scenario("API 5xx, 429, timeouts and resets, 50 % of requests", api(mixed, env=TIMEOUTS), short=True),
        Scenario("payload: invalid JSON on one day", payload("malformed", "invalid JSON")),
        Scenario("payload: unequal arrays on one day", payload("unequal", "values, expected")),
        Scenario("payload: missing hours on one day", payload("missing_hours", "hours, expected")),
        Scenario("payload: wrong types on one day", payload("wrong_types", "non-numeric")),
        Scenario(
            "payload: a location silently dropped on one day", payload("dropped_location", "expected"), short=True
        ),
        Scenario("bad data: 99 °C on one day, kept out of the published marts", faults.hot_day, short=True),
        Scenario("locations: one removed, one added", faults.location_changes, short=True),
        Scenario("SIGKILL of the backfill process during extract", partial(kills.sigkill, phase="extract")),
        Scenario("SIGKILL of the backfill process during load", partial(kills.sigkill, phase="load"), short=True),
        Scenario("SIGKILL of the backfill process during dbt", partial(kills.sigkill, phase="dbt")),
        Scenario("SIGKILL of the process worker during load (deployment form)", kills.worker_kill),
        Scenario("Postgres restarted mid-load", kills.postgres_restart, short=True),
        Scenario("lost host: one of two worker hosts killed mid spread-backfill", lost_host.lost_host, short=True),
        Scenario("two daily runs of one day and an overlapping backfill at once", kills.concurrent, short=True),
        Scenario("hostile inputs (names, dates, ranges, locations files)", hostile.hostile, short=True),
        Scenario("webhook receiver down when a run fails", alerts.receiver_down, short=True),
        Scenario("Prefect server down at the freshness check", alerts.prefect_down),
        Scenario(f"soak: backfill {size.soak} with 10 % transient faults", api(soak, size.soak, TIMEOUTS)),
    ]


def select(scenarios: list[Scenario], short: bool, only: str | None) -> list[Scenario]:
    """The short form's scenarios if `short`; then those whose name contains a word of the comma-separated `only`."""
    chosen = [scenario for scenario in scenarios if scenario.short or not short]
    if only:
        words = [word.strip().lower() for word in only.split(",") if word.strip()]
        chosen = [scenario for scenario in chosen if any(word in scenario.name.lower() for word in words)]
    return chosen
