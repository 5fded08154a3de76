"""Workers on separate hosts: two network namespaces, each with its own checkout, virtualenv, hostname and
worker on the one pool, against the server, warehouse and source API of the root namespace."""

import base64
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from pydantic import SecretStr

from blocks import WEBHOOK, NotificationWebhook, apply_blocks
from pipeline import concurrency, deploy, notify, processes, stack
from pipeline.defaults import SOURCE_RATE_LIMIT as RATE_LIMIT
from pipeline.settings import Settings
from pipeline.source_server import FaultPlan
from tests.e2e.conftest import CHECKOUT, POOL, Worker
from tests.support import WebhookReceiver, poll_until
from tests.support.backfills import chunk_runs, window_state
from tests.support.checkouts import copy_checkout, install_virtualenv
from tests.support.forward import TcpForwarder
from tests.support.hosts import Hosts, HostsUnavailable

# Twelve days in chunks of four: three chunk runs, all in flight at once.
FIRST, LAST = date(2024, 1, 1), date(2024, 1, 12)
CHUNK_DAYS = 4
# Ten locations, fetched one per request: enough calls for the rate limit to have something to pace.
LOCATIONS = 10
SUBMITTED = re.compile(r"Worker '([^']+)' submitting flow run '([0-9a-f-]{36})'")


@dataclass(frozen=True)
class Reachable:
    """Where the hosts find the root namespace's services: its address on their bridge."""

    api_url: str
    database_url: str
    source_url: str


class HostWorker(Worker):
    """A worker started inside one of the hosts, from that host's checkout and virtualenv."""

    def __init__(self, hosts: Hosts, index: int, checkout: Path, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hosts, self.index = hosts, index
        self.env |= {
            "PREFECT_HOME": str(checkout / ".prefect"),
            "PIPELINE_DATA_DIR": str(checkout / ".local"),
            "PIPELINE_BACKFILL_CHUNK_DAYS": str(CHUNK_DAYS),
            # A request per location: the rate limit has calls enough to pace.
            "PIPELINE_LOCATIONS_PER_REQUEST": "1",
        }

    def start(self) -> None:
        # At most two runs per worker: the host running the backfill itself has room for one chunk,
        # so the chunk limit's three slots cannot all land on one host.
        argv = stack.worker_command(POOL, self.python) + ["--name", self.name, "--limit", "2"]
        self.process = processes.start_process(
            self.name, self.hosts.command(self.index, argv), self.env, self.log, cwd=self.cwd
        )

    def submitted(self) -> set[UUID]:
        """The flow runs this worker started, as its log says."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return {UUID(run_id) for name, run_id in SUBMITTED.findall(text) if name == self.name}


@pytest.fixture(scope="module")
def hosts():
    try:
        made = Hosts(2).__enter__()
    except HostsUnavailable as exc:
        pytest.skip(f"cannot make two hosts as network namespaces here: {exc}")
    try:
        yield made
    finally:
        made.__exit__()


@pytest.fixture(scope="module")
def reachable(hosts, prefect_api, database_url, source):
    """The server, the warehouse and the source API relayed from loopback to the root namespace's bridge address."""
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    if str(info.get("host", "")).startswith("/") or not info.get("host"):
        pytest.skip("the test warehouse listens on a Unix socket, which the hosts cannot reach")
    targets = {
        "api": ("127.0.0.1", urlsplit(prefect_api).port),
        "postgres": (info["host"], int(info.get("port") or 5432)),
        "source": ("127.0.0.1", urlsplit(source.url).port),
    }
    forwarders = [TcpForwarder((hosts.gateway, port), (host, port)).start() for host, port in targets.values()]
    try:
        yield Reachable(
            api_url=f"http://{hosts.gateway}:{targets['api'][1]}/api",
            database_url=psycopg.conninfo.make_conninfo(database_url, host=hosts.gateway),
            source_url=f"http://{hosts.gateway}:{targets['source'][1]}",
        )
    finally:
        for forwarder in forwarders:
            forwarder.stop()


@pytest.fixture(scope="module")
def host_blocks(configured, reachable, database_url, source):
    """The blocks every run reads, pointing at the addresses the hosts reach; put back afterwards."""
    apply_blocks(Settings(database_url=reachable.database_url, source_url=reachable.source_url))
    yield
    apply_blocks(Settings(database_url=database_url, source_url=source.url))


@pytest.fixture(scope="module")
def host_receiver(hosts, host_blocks):
    """A signed webhook endpoint in the root namespace, in the block the hosts' runs read, at the bridge address."""
    with WebhookReceiver("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()) as receiver:
        with TcpForwarder((hosts.gateway, receiver.port), ("127.0.0.1", receiver.port)):
            url = receiver.url.replace("127.0.0.1", hosts.gateway)
            NotificationWebhook(url=SecretStr(url), signing_key=SecretStr(receiver.secret)).save(
                WEBHOOK, overwrite=True
            )
            try:
                yield receiver
            finally:
                # Later modules expect no weather-webhook document, as `pipeline deploy` left it.
                NotificationWebhook.delete(WEBHOOK)


def received(receiver: WebhookReceiver, event_type: str, **data) -> list[dict]:
    """The verified events of `event_type` whose data holds every item of `data`."""
    return [
        event for event in receiver.events() if event["type"] == event_type and data.items() <= event["data"].items()
    ]


def report_runs(run_ids: set[UUID]) -> list[FlowRun]:
    """The report-run flow runs the crash alert automation started for any of `run_ids`."""
    wanted = {str(run_id) for run_id in run_ids}
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("report-run/report-run")
        runs = client.read_flow_runs(limit=200)
    return [run for run in runs if run.deployment_id == deployment.id and run.parameters.get("flow_run_id") in wanted]


@pytest.fixture
def paced(configured):
    """`pace(rate)`: the open-meteo-api limit, which the hosts share, at `rate` calls a second; as before after."""

    def pace(rate: float) -> None:
        concurrency.ensure_rate_limit(RATE_LIMIT, 1, rate)

    yield pace
    concurrency.ensure_rate_limit(RATE_LIMIT, concurrency.RATE_LIMIT_SLOTS, concurrency.RATE_LIMIT_DECAY_PER_SECOND)


@pytest.fixture(scope="module")
def host_locations(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("host-locations") / "locations.csv"
    rows = [f"p{n:02d},Place {n},{40 + n}.5,{n}.25" for n in range(LOCATIONS)]
    path.write_text("location_id,name,latitude,longitude\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def busiest_second(times: list[float]) -> int:
    """The most requests that arrived within any one second."""
    return max((sum(1 for other in times if start <= other < start + 1.0) for start in times), default=0)


@pytest.fixture(scope="module")
def host_workers(hosts, host_blocks, reachable, worker, stack_paths, host_locations, tmp_path_factory):
    """One worker per host, each from its own copy of the checkout; the root namespace's worker is stopped."""
    checkouts = [tmp_path_factory.mktemp(name) / "srv" / "weather" for name in hosts.hostnames]
    for checkout in checkouts:
        copy_checkout(CHECKOUT, checkout)
    with ThreadPoolExecutor(len(checkouts)) as pool:
        pythons = list(pool.map(install_virtualenv, checkouts))
    workers = [
        HostWorker(
            hosts,
            index,
            checkout,
            stack_paths,
            reachable.api_url,
            host_locations,
            python=python,
            cwd=checkout,
            name=hosts.hostnames[index],
        )
        for index, (checkout, python) in enumerate(zip(checkouts, pythons, strict=True))
    ]
    worker.stop()
    try:
        for host_worker in workers:
            host_worker.start()
        yield workers
    finally:
        for host_worker in workers:
            host_worker.stop()
        worker.start()


def create_backfill_run(first: date = FIRST, last: date = LAST, **parameters) -> FlowRun:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("backfill-weather/backfill")
        return client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"start_date": first.isoformat(), "end_date": last.isoformat(), **parameters},
        )


def test_spread_backfill_runs_its_chunks_on_both_hosts_and_lands_what_the_in_process_one_did(
    host_workers, paced, warehouse, source
):
    first_host, second_host = host_workers
    source.reset_counters()
    in_process = first_host.wait_for_final_state(create_backfill_run(reprocess="all").id, timeout=240)
    in_process_requests = source.request_times
    in_process_raw, in_process_mart, in_process_by = window_state(warehouse, FIRST, LAST)

    # Two calls a second for both hosts together: one slot, freed after half a second.
    paced(2.0)
    source.reset_counters()
    spread = first_host.wait_for_final_state(create_backfill_run(reprocess="all", spread=True).id, timeout=240)
    requests = source.request_times
    spread_raw, spread_mart, spread_by = window_state(warehouse, FIRST, LAST)
    chunks = chunk_runs(spread.id)
    # Run again: the ledger says every day landed, so no chunk run starts and nothing is rewritten.
    rerun = first_host.wait_for_final_state(create_backfill_run(spread=True).id, timeout=240)
    by_host = {host.name: host.submitted() & {run.id for run in chunks} for host in host_workers}

    assert in_process.state.is_completed(), f"{in_process.state.message}\n{first_host.log_tail()}"
    assert spread.state.is_completed(), f"{spread.state.message}\n{first_host.log_tail()}\n{second_host.log_tail()}"
    assert chunk_runs(in_process.id) == []
    assert set(in_process_by.values()) == {in_process.id}
    assert len(chunks) == (LAST - FIRST).days // CHUNK_DAYS + 1
    assert all(run.state.is_completed() for run in chunks)
    # Every day was rewritten by a chunk run, to exactly what the in-process backfill had written.
    assert set(spread_by.values()) == {run.id for run in chunks}
    assert len(spread_raw) == (LAST - FIRST).days + 1
    assert (spread_raw, spread_mart) == (in_process_raw, in_process_mart)
    assert rerun.state.is_completed(), f"{rerun.state.message}\n{first_host.log_tail()}"
    assert chunk_runs(rerun.id) == []
    assert window_state(warehouse, FIRST, LAST)[2] == spread_by
    assert all(by_host.values()), by_host
    assert set().union(*by_host.values()) == {run.id for run in chunks}
    # Both hosts pulled at once, through the one rate limit: at most the slot plus two freed in any
    # second, where each chunk alone asks for its ten back to back (the in-process run did: unpaced).
    assert len(requests) == LOCATIONS * len(chunks)
    assert busiest_second(requests) <= 3, [round(t - requests[0], 2) for t in requests]
    assert busiest_second(in_process_requests) > 3, [round(t - in_process_requests[0], 2) for t in in_process_requests]


@pytest.fixture
def quick_crash_detection(configured, tmp_path):
    """weather-crashed-runs after 45 s without a heartbeat instead of 90, for the length of one test."""
    deployed = CHECKOUT / deploy.AUTOMATIONS / "crashed-runs.yaml"
    text = deployed.read_text(encoding="utf-8")
    assert "  within: 90\n" in text
    (tmp_path / deployed.name).write_text(text.replace("  within: 90\n", "  within: 45\n"), encoding="utf-8")
    deploy.apply_automations(tmp_path)
    yield
    deploy.apply_automations(CHECKOUT / deploy.AUTOMATIONS)


def test_a_lost_hosts_chunk_runs_are_found_crashed_run_again_on_the_other_host_and_alerted_once(
    host_workers, host_receiver, warehouse, source, quick_crash_detection
):
    first_host, second_host = host_workers
    first, last = LAST + timedelta(days=1), LAST + timedelta(days=12)
    # The backfill itself runs on the first host; the second joins for the chunks.
    second_host.stop()
    # Every download takes 0.5 s, so the chunk runs are still running when the host goes.
    source.faults = FaultPlan(slow=1.0, slow_seconds=0.5)
    try:
        backfill = create_backfill_run(first, last, spread=True)
        first_host.wait_for_running(backfill.id, timeout=120)
        second_host.start()

        def running_on_second_host() -> list[FlowRun]:
            taken = second_host.submitted()
            mine = [run for run in chunk_runs(backfill.id) if run.id in taken]
            return mine if mine and all(run.state.is_running() for run in mine) else []

        lost = poll_until(running_on_second_host, timeout=150, interval=0.5, what="chunk runs running on host-b")
        time.sleep(2)  # past each run's first heartbeat, sent as it starts
        second_host.kill()
        killed_at = time.monotonic()
        lost_ids = {run.id for run in lost}
        crashed = poll_until(
            lambda: (
                [run for run in chunk_runs(backfill.id) if run.id in lost_ids and run.state.is_crashed()]
                if all(run.state.is_crashed() for run in chunk_runs(backfill.id) if run.id in lost_ids)
                else []
            ),
            timeout=150,
            interval=1.0,
            what="the lost host's chunk runs to be marked Crashed",
        )
        detected_after = time.monotonic() - killed_at
        final = first_host.wait_for_final_state(backfill.id, timeout=300)
    finally:
        source.faults = FaultPlan()
        second_host.start()
    runs = chunk_runs(backfill.id)
    completed = [run for run in runs if run.state.is_completed()]
    raw, mart, loaded_by = window_state(warehouse, first, last)
    # Every crashed run's report has ended (a repeat would be in by then); the alerts they sent arrive.
    reports = poll_until(
        lambda: found if len(found := report_runs(lost_ids)) >= len(lost_ids) else [],
        timeout=120,
        interval=1.0,
        what=lambda: f"a report-run for each of {lost_ids}:\n{first_host.log_tail()}",
    )
    reports = [first_host.wait_for_final_state(run.id) for run in reports]
    crash_alerts = poll_until(
        lambda: received(host_receiver, notify.RUN_FAILED, failed_step="crashed"),
        timeout=60,
        interval=0.5,
        what="the crash alert",
    )
    completions = received(host_receiver, notify.BACKFILL_COMPLETED)
    # What the same days are when one process backfills them, rewritten from the source.
    reference = first_host.wait_for_final_state(create_backfill_run(first, last, reprocess="all").id, timeout=240)
    reference_raw, reference_mart, _ = window_state(warehouse, first, last)

    assert final.state.is_completed(), f"{final.state.message}\n{first_host.log_tail()}"
    assert {run.id for run in crashed} == lost_ids
    assert all("No heartbeat" in (run.state.message or "") for run in crashed)
    assert detected_after < 45 + 60, detected_after
    # Each chunk completed exactly once; the lost ones on the host that was left.
    chunks = {(run.parameters["first"], run.parameters["last"]) for run in runs}
    assert sorted((run.parameters["first"], run.parameters["last"]) for run in completed) == sorted(chunks)
    assert len(chunks) == (last - first).days // CHUNK_DAYS + 1
    reruns = [
        run
        for run in completed
        if (run.parameters["first"], run.parameters["last"])
        in {(lost_run.parameters["first"], lost_run.parameters["last"]) for lost_run in lost}
    ]
    assert {run.id for run in reruns} <= first_host.submitted()
    # Nothing lost, nothing twice: every day once per location and hour, loaded by a completed chunk run.
    assert sorted(raw) == [first + timedelta(days=n) for n in range((last - first).days + 1)]
    assert all(rows == keys == 24 * LOCATIONS for rows, keys, _ in raw.values()), raw
    assert set(loaded_by.values()) <= {run.id for run in completed}
    # The same rows and published marts as a backfill in one process.
    assert reference.state.is_completed(), f"{reference.state.message}\n{first_host.log_tail()}"
    assert (raw, mart) == (reference_raw, reference_mart)
    # The crash reached the webhook once, however many chunk runs the host took with it.
    assert all(report.state.is_completed() for report in reports), [report.state for report in reports]
    assert len(crash_alerts) == 1, crash_alerts
    assert crash_alerts[0]["data"]["deployment"] == "backfill-chunk"
    assert UUID(crash_alerts[0]["data"]["flow_run"]["id"]) in lost_ids
    assert len(host_receiver.deliveries) == len({d.headers["webhook-id"] for d in host_receiver.deliveries})
    assert [event["data"]["flow_run"]["id"] for event in completions].count(str(backfill.id)) == 1
