"""A worker host lost in the middle of a spread backfill: two hosts as network namespaces, one killed."""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr

from blocks import WEBHOOK, NotificationWebhook
from drills.cluster import POOL
from drills.compare import compare
from drills.receiver import Receiver
from drills.report import Outcome
from drills.runs import Drill
from pipeline import deploy, notify, processes, stack
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.source_server import FaultPlan
from tests.support.forward import TcpForwarder
from tests.support.hosts import Hosts, HostsUnavailable

# Two-day chunks: the short drill's 8 days are four chunks in three chunk runs (one per slot of the
# chunk limit), some on each host.
CHUNK_DAYS = "2"
# The weather-crashed-runs automation's wait, shortened from 90 s (three of the 30 s heartbeats) to keep
# the drill short; still above one heartbeat interval, with slack.
CRASH_AFTER_SECONDS = 45
# Each download takes this long while the hosts take their chunks, so the lost host's are mid-run.
SLOW_SECONDS = 1.0
SUBMITTED = re.compile(r"Worker '([^']+)' submitting flow run '([0-9a-f-]{36})'")
WAIT_SECONDS = 300.0


def lost_host(drill: Drill, outcome: Outcome) -> None:
    """Kill one host's worker and its flow runs mid-backfill; the rest must land it all, alerting once."""
    try:
        hosts = Hosts(2).__enter__()
    except (HostsUnavailable, OSError) as exc:
        outcome.skip(f"no network namespaces here: {exc}")
        return
    try:
        with HostLoss(drill, hosts) as loss:
            loss.run(outcome)
    finally:
        hosts.__exit__()


class HostLoss:
    """The drill's server, source and a webhook receiver relayed to the hosts, and a worker on each host."""

    def __init__(self, drill: Drill, hosts: Hosts):
        self.drill, self.hosts = drill, hosts
        self.db = drill.cluster.database("drill_hosts")
        self.receiver = Receiver()
        self.relays: list[TcpForwarder] = []
        self.workers: dict[str, processes.Process] = {}

    def __enter__(self) -> HostLoss:
        try:
            self._set_up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _set_up(self) -> None:
        cluster, gateway = self.drill.cluster, self.hosts.gateway
        ports = {
            name: int(url.rsplit(":", 1)[1].split("/")[0])
            for name, url in (("api", cluster.api_url), ("source", self.drill.source.url))
        } | {"webhook": self.receiver.port}
        self.relays = [TcpForwarder((gateway, port), ("127.0.0.1", port)).start() for port in ports.values()]
        self.api_url = f"http://{gateway}:{ports['api']}/api"
        # The warehouse is the drill's Postgres on its Unix socket, which the namespaces share with the machine.
        self.source_url = f"http://{gateway}:{ports['source']}"
        settings = Settings(
            database_url=self.db.dsn,
            source_url=self.source_url,
            source_rate_limit="",
            webhook_url=SecretStr(self.receiver.url.replace("127.0.0.1", gateway)),
            webhook_secret=SecretStr(self.receiver.secret),
        )
        with self.client_settings():
            deploy.configure_server(settings, POOL, say=lambda _line: None)
            quick = Path(tempfile.mkdtemp(dir=self.drill.work)) / "crashed-runs.yaml"
            text = (PROJECT_ROOT / deploy.AUTOMATIONS / "crashed-runs.yaml").read_text(encoding="utf-8")
            quick.write_text(text.replace("  within: 90\n", f"  within: {CRASH_AFTER_SECONDS}\n"), encoding="utf-8")
            deploy.apply_automations(quick.parent)

    def __exit__(self, *exc_info: object) -> None:
        for worker in self.workers.values():
            processes.stop_process(worker)
        with self.client_settings():
            # Later scenarios' deployment runs alert nowhere, and detect crashes as a VM would.
            with suppress(ObjectNotFound):  # a set-up that failed before saving it
                NotificationWebhook.delete(WEBHOOK)
            deploy.apply_automations(PROJECT_ROOT / deploy.AUTOMATIONS)
        for relay in self.relays:
            relay.stop()
        self.receiver.close()

    def client_settings(self):
        return temporary_settings(updates={PREFECT_API_URL: self.drill.cluster.api_url})

    def start_worker(self, index: int) -> None:
        name = self.hosts.hostnames[index]
        env = self.drill.env(
            self.db,
            PREFECT_API_URL=self.api_url,
            PIPELINE_SOURCE_URL=self.source_url,
            PIPELINE_BACKFILL_CHUNK_DAYS=CHUNK_DAYS,
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="1",
            PREFECT_LOGGING_LEVEL="INFO",
        )
        # Three runs at most: on the first host the backfill and two of the three chunks in flight, so
        # the second host takes one; once it is lost, the reruns and the crash reports run side by side.
        argv = [*stack.worker_command(POOL), "--name", name, "--limit", "3"]
        self.workers[name] = processes.start_process(
            name, self.hosts.command(index, argv), env, self.log(name), cwd=PROJECT_ROOT
        )

    def log(self, name: str) -> Path:
        return self.drill.work / f"{name}.log"

    def submitted(self, name: str) -> set[UUID]:
        text = self.log(name).read_text(encoding="utf-8", errors="replace") if self.log(name).exists() else ""
        return {UUID(run_id) for worker, run_id in SUBMITTED.findall(text) if worker == name}

    def run(self, outcome: Outcome) -> None:
        drill, window = self.drill, self.drill.size.range
        first, second = self.hosts.hostnames
        with self.client_settings(), get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("backfill-weather/backfill")
            # The backfill runs on the first host; the second joins for the chunks.
            self.start_worker(0)
            drill.source.faults = FaultPlan(slow=1.0, slow_seconds=SLOW_SECONDS)
            backfill = client.create_flow_run_from_deployment(
                deployment.id,
                parameters={
                    "start_date": window.first.isoformat(),
                    "end_date": window.last.isoformat(),
                    "spread": True,
                },
            )
            outcome.runs += 1
            wait(lambda: client.read_flow_run(backfill.id).state.is_running(), "the backfill to start")
            self.start_worker(1)

            def running_on_second() -> list[FlowRun]:
                taken = self.submitted(second)
                mine = [run for run in chunk_runs(client, backfill.id) if run.id in taken]
                return mine if mine and all(run.state.is_running() for run in mine) else []

            lost = wait(running_on_second, f"chunk runs running on {second}")
            time.sleep(2)  # past each run's first heartbeat, sent as it starts
            processes.kill_tree(self.workers.pop(second).pid)
            killed_at = time.monotonic()
            outcome.faults += 1
            drill.source.faults = FaultPlan()
            lost_ids = {run.id for run in lost}
            wait(
                lambda: all(run.state.is_final() for run in chunk_runs(client, backfill.id) if run.id in lost_ids),
                "the lost host's chunk runs to be marked Crashed",
            )
            detected = time.monotonic() - killed_at
            final = wait(
                lambda: run if (run := client.read_flow_run(backfill.id)).state.is_final() else None,
                "the backfill to end",
            )
            crashed = [run for run in chunk_runs(client, backfill.id) if run.id in lost_ids and run.state.is_crashed()]
            reports = wait(lambda: report_runs(client, lost_ids, final=True), "the crash reports")
            outcome.runs += len(chunk_runs(client, backfill.id)) + len(reports)
        compare(drill, self.db, window.days, outcome)
        alerts = [
            event for event in self.receiver.events(notify.RUN_FAILED) if event["data"]["failed_step"] == "crashed"
        ]
        problems = []
        if not final.state.is_completed():
            problems.append(f"the backfill ended {final.state_name}: {(final.state.message or '')[:120]}")
        if len(crashed) != len(lost_ids):
            problems.append(f"{len(crashed)} of the lost host's {len(lost_ids)} chunk runs marked Crashed")
        if len(alerts) != 1 or not self.receiver.verified():
            problems.append(f"{len(alerts)} signed crash alerts, expected 1")
        outcome.judge(
            problems,
            f"{len(lost_ids)} chunk run(s) lost with {second}, found crashed {detected:.0f} s"
            f" after the kill and run again on {first}; one crash alert",
        )


def wait(condition: Callable, what: str, timeout: float = WAIT_SECONDS):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.5)
    return value


def chunk_runs(client, parent: UUID) -> list[FlowRun]:
    return client.read_flow_runs(
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent]))
    )


def report_runs(client, run_ids: set[UUID], final: bool) -> list[FlowRun]:
    """The report-run flow runs started for each of `run_ids`, once every one of them has one (and has ended)."""
    deployment = client.read_deployment_by_name("report-run/report-run")
    wanted = {str(run_id) for run_id in run_ids}
    runs = [
        run
        for run in client.read_flow_runs(limit=200)
        if run.deployment_id == deployment.id and run.parameters.get("flow_run_id") in wanted
    ]
    if {run.parameters["flow_run_id"] for run in runs} != wanted:
        return []
    return runs if not final or all(run.state.is_final() for run in runs) else []
