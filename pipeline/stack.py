"""The pipeline's Prefect stack: configure a server (pool, queues, rate limit, blocks, deployments,
automations) and run a server, a process worker and their helpers on this machine in the background."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from uuid import UUID

import httpx
import psutil
import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.events.schemas.automations import AutomationCore
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from prefect.workers.process import ProcessWorker
from pydantic import SecretStr

from blocks import apply_blocks
from pipeline import embedded
from pipeline.settings import PROJECT_ROOT, Settings

DEFAULT_POOL = "weather-pool"
# Lower is served first: a waiting daily run is picked before any backfill run.
QUEUES = {"daily": 1, "backfill": 10}
# The public archive allows fewer than 600 calls a minute: one slot per call, 10 freed a second.
RATE_LIMIT_SLOTS = 600
RATE_LIMIT_DECAY_PER_SECOND = 10.0
AUTOMATIONS = Path("deployments") / "automations"
STOP_TIMEOUT_SECONDS = 15.0
SERVER_STARTUP_SECONDS = 180.0

Say = Callable[[str], None]


class StackError(Exception):
    """A part of the stack could not be started, configured or stopped."""


@dataclass(frozen=True)
class Process:
    """A background process started by `up`, as recorded in pids.json."""

    name: str
    pid: int
    # The kernel's start time tells our process from a later one that reuses its PID.
    started_at: float
    log: str
    stop_signal: str = "SIGTERM"
    # Started as the leader of its own session: signal its whole process group.
    group: bool = True


@dataclass
class StackState:
    api_url: str
    ui_url: str
    source_url: str | None = None
    processes: list[Process] = field(default_factory=list)

    def process(self, name: str) -> Process | None:
        return next((p for p in self.processes if p.name == name), None)


@dataclass(frozen=True)
class StackPaths:
    """Where `up` keeps its state, logs, Prefect home and embedded Postgres: under `<data_dir>/stack`."""

    root: Path

    @property
    def pids(self) -> Path:
        return self.root / "pids.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"


def configure_server(settings: Settings, pool: str, project_dir: Path = PROJECT_ROOT, say: Say = print) -> None:
    """Make the server in PREFECT_API_URL ready to run the pipeline; every step is idempotent."""
    say(ensure_work_pool(pool, QUEUES))
    if settings.source_rate_limit:
        say(ensure_rate_limit(settings.source_rate_limit, RATE_LIMIT_SLOTS, RATE_LIMIT_DECAY_PER_SECOND))
    for line in apply_blocks(settings):
        say(line)
    say(deploy(project_dir, pool))
    for line in apply_automations(project_dir / AUTOMATIONS):
        say(line)


def ensure_work_pool(pool: str, queues: dict[str, int]) -> str:
    """Create the process work pool and its queues, or set the queues' priorities if they exist."""
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_work_pool(pool)
        except ObjectNotFound:
            existing = None
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(WorkPoolCreate(name=pool, type="process", base_job_template=template))
        if existing is not None and existing.type != "process":
            raise StackError(f"work pool {pool!r} exists with type {existing.type!r}; the pipeline needs 'process'")
        for name, priority in queues.items():
            try:
                queue = client.read_work_queue_by_name(name, work_pool_name=pool)
            except ObjectNotFound:
                client.create_work_queue(name, work_pool_name=pool, priority=priority)
                continue
            if queue.priority != priority:
                client.update_work_queue(queue.id, priority=priority)
    listed = ", ".join(f"{name} (priority {priority})" for name, priority in queues.items())
    return f"work pool {pool}: {'created' if existing is None else 'present'}, queues {listed}"


def ensure_rate_limit(name: str, slots: int, decay_per_second: float) -> str:
    """Create or update the global concurrency limit that paces calls to the source API."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, slots, slot_decay_per_second=decay_per_second)
    return f"rate limit {name}: {slots} slots, {decay_per_second:g} freed per second"


def deploy(project_dir: Path, pool: str) -> str:
    """`prefect --no-prompt deploy --all` in `project_dir`, against the server in PREFECT_API_URL."""
    env = {**os.environ, "PREFECT_DEFAULT_WORK_POOL_NAME": pool}
    # This process's setting (a profile, or `up`'s own server) wins over an inherited variable.
    if api_url := PREFECT_API_URL.value():
        env["PREFECT_API_URL"] = api_url
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=project_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise StackError(f"prefect deploy --all failed (exit {result.returncode}): {_tail(output)}")
    names = re.findall(r"Deployment '([^']+)' successfully created", output)
    return f"deployments to pool {pool}: {', '.join(names) or 'none found in prefect.yaml'}"


def apply_automations(folder: Path) -> list[str]:
    """Create, or update by name, every automation in `folder/*.yaml`."""
    done = []
    with get_client(sync_client=True) as client:
        for path in sorted(folder.glob("*.yaml")):
            for spec in automation_specs(yaml.safe_load(path.read_text(encoding="utf-8"))):
                resolved = with_deployment_ids(spec, lambda name: _deployment_id(client, name))
                automation = AutomationCore.model_validate(resolved)
                existing = client.read_automations_by_name(automation.name)
                if not existing:
                    client.create_automation(automation)
                    done.append(f"automation {automation.name}: created")
                    continue
                client.update_automation(existing[0].id, automation)
                # Copies left by `prefect automation create`, which never updates.
                for duplicate in existing[1:]:
                    client.delete_automation(duplicate.id)
                done.append(f"automation {automation.name}: updated")
    return done


def with_deployment_ids(spec: dict, deployment_id: Callable[[str], object]) -> dict:
    """`spec` with each action's `deployment_name` (`<flow>/<deployment>`) replaced by `deployment_id(name)`.

    Deployment ids differ on every server, so the files name deployments instead.
    """
    actions = []
    for action in spec.get("actions", []):
        if "deployment_name" in action:
            rest = {key: value for key, value in action.items() if key != "deployment_name"}
            action = rest | {"deployment_id": str(deployment_id(action["deployment_name"]))}
        actions.append(action)
    return {**spec, "actions": actions}


def _deployment_id(client: SyncPrefectClient, deployment: str) -> UUID:
    try:
        return client.read_deployment_by_name(deployment).id
    except ObjectNotFound:
        raise StackError(f"an automation runs deployment {deployment!r}, which prefect.yaml does not deploy") from None


def automation_specs(document: object) -> list[dict]:
    """The automations in one file, in any shape `prefect automation create --from-file` accepts."""
    if isinstance(document, dict) and "automations" in document:
        return list(document["automations"])
    if isinstance(document, list):
        return document
    return [document] if document else []


def up(settings: Settings, port: int, pool: str, local_source: bool = False, say: Say = print) -> StackState:
    """Start what is not running yet (Postgres, source API, server, worker), then configure the server."""
    paths = StackPaths(settings.data_dir / "stack")
    api_url = f"http://127.0.0.1:{port}/api"
    previous = load_state(paths)
    alive = [p for p in previous.processes if is_running(p)] if previous else []
    state = StackState(api_url=api_url, ui_url=f"http://127.0.0.1:{port}", processes=alive)
    if state.process("server") and previous.api_url != api_url:
        raise StackError(f"the stack already runs a server at {previous.api_url}; run `pipeline down` first")
    env = stack_env(paths, api_url)

    def ensure(name: str, argv: list[str]) -> Process:
        # Recorded as soon as it starts, so `down` can stop it even if a later step fails.
        process = state.process(name) or start_process(name, argv, env, paths.logs / f"{name}.log")
        _record(paths, state, process)
        return process

    if settings.database_url is None:
        dsn, postmaster = start_embedded_postgres(paths.postgres)
        _record(paths, state, postmaster)
        settings = settings.model_copy(update={"database_url": SecretStr(dsn)})
        say(f"warehouse: embedded Postgres in {paths.postgres}")
    if local_source:
        reuse = previous is not None and previous.source_url and state.process("source")
        state.source_url = previous.source_url if reuse else f"http://127.0.0.1:{free_port()}"
        port_text = state.source_url.rsplit(":", 1)[1]
        source = ensure("source", [_console_script("pipeline"), "source", "serve", "--port", port_text])
        wait_until(lambda: _answers(state.source_url), source, 30.0, "the local source API")
        # The local server has no quota to protect.
        settings = settings.model_copy(update={"source_url": state.source_url, "source_rate_limit": ""})
        say(f"source API: local, {state.source_url}")

    server = ensure("server", server_command(port))
    wait_until(lambda: api_healthy(api_url), server, SERVER_STARTUP_SECONDS, f"the Prefect server at {api_url}")
    say(f"Prefect server: {api_url} (pid {server.pid}, log {server.log})")
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        configure_server(settings, pool, say=say)
    worker = ensure("worker", worker_command(pool))
    say(f"process worker on pool {pool}: pid {worker.pid}, log {worker.log}")
    return state


def down(data_dir: Path, say: Say = print, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
    """Stop the processes `up` recorded, worker first, and forget them; returns whether there was a stack."""
    paths = StackPaths(data_dir / "stack")
    state = load_state(paths)
    if state is None:
        return False
    order = ["worker", "source", "server", "postgres"]
    for process in sorted(state.processes, key=lambda p: order.index(p.name) if p.name in order else len(order)):
        say(stop_process(process, timeout))
    paths.pids.unlink()
    return True


def server_command(port: int) -> list[str]:
    return [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]


def worker_command(pool: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]


def stack_env(paths: StackPaths, api_url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the stack's processes: `base` (default: this one's) plus a project-local Prefect home."""
    return {
        **(os.environ if base is None else base),
        "PREFECT_HOME": str(paths.prefect_home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def start_embedded_postgres(pgdata: Path) -> tuple[str, Process]:
    """Start (or reuse) a Postgres under `pgdata` that outlives this process; returns its DSN and postmaster."""
    # cleanup_mode=None: the server keeps running after `up` exits, until `down` stops it.
    server = embedded.serve(pgdata, cleanup_mode=None)
    pid = server.get_pid()
    postmaster = Process(
        name="postgres",
        pid=pid,
        started_at=psutil.Process(pid).create_time(),
        log=str(pgdata / "log"),
        # What `pg_ctl stop -m fast` sends: roll back open transactions, shut down cleanly.
        stop_signal="SIGINT",
        group=False,
    )
    return server.get_uri(embedded.DATABASE), postmaster


def start_process(name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path = PROJECT_ROOT) -> Process:
    """Start `argv` in `cwd`, in the background as the leader of a new session, its output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with _sigint_not_ignored(), open(log_path, "ab") as log:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    return Process(name=name, pid=child.pid, started_at=psutil.Process(child.pid).create_time(), log=str(log_path))


def stop_process(process: Process, timeout: float = STOP_TIMEOUT_SECONDS) -> str:
    """Signal a recorded process (its group, if it leads one) and wait; SIGKILL what is left after `timeout`.

    The worker starts each flow run in a session of its own: those are found as its descendants.
    """
    if not is_running(process):
        return f"{process.name} (pid {process.pid}): not running"
    descendants = psutil.Process(process.pid).children(recursive=True)
    _signal(process, signal.Signals[process.stop_signal])
    if _wait_stopped(process, descendants, timeout):
        return f"{process.name} (pid {process.pid}): stopped"
    _signal(process, signal.SIGKILL)
    for child in descendants:
        with suppress(psutil.NoSuchProcess):
            child.kill()
    if not _wait_stopped(process, descendants, 5.0):
        raise StackError(f"{process.name} (pid {process.pid}) survived SIGKILL")
    return f"{process.name} (pid {process.pid}): killed after {timeout:g} s without stopping"


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything under it, as the OOM killer or a lost VM would."""
    leader = psutil.Process(pid)
    family = [leader, *leader.children(recursive=True)]
    for proc in family:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


def is_running(process: Process) -> bool:
    """Whether the recorded process is still alive, and is still the process we started."""
    try:
        proc = psutil.Process(process.pid)
        return abs(proc.create_time() - process.started_at) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def load_state(paths: StackPaths) -> StackState | None:
    if not paths.pids.exists():
        return None
    data = json.loads(paths.pids.read_text(encoding="utf-8"))
    return StackState(**{**data, "processes": [Process(**p) for p in data["processes"]]})


def save_state(paths: StackPaths, state: StackState) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.pids.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")


def wait_until(ready: Callable[[], bool], process: Process, timeout: float, what: str) -> None:
    """Poll `ready` until it holds; fail early, with the log's tail, if `process` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not is_running(process):
            raise StackError(f"{what} exited while starting; {process.log} ends: {_tail(_read(process.log))}")
        if time.monotonic() > deadline:
            raise StackError(f"{what} was not ready after {timeout:g} s; see {process.log}")
        time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_pool() -> str:
    """The work pool deployments go to: PREFECT_DEFAULT_WORK_POOL_NAME, else weather-pool."""
    return get_current_settings().deployments.default_work_pool_name or DEFAULT_POOL


def api_healthy(api_url: str) -> bool:
    """Whether the Prefect API at `api_url` answers its health check."""
    try:
        return httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2.0)
        return True
    except httpx.HTTPError:
        return False


def _signal(process: Process, signum: signal.Signals) -> None:
    try:
        if process.group:
            os.killpg(process.pid, signum)
        else:
            os.kill(process.pid, signum)
    except ProcessLookupError:
        pass


def _wait_stopped(process: Process, descendants: list[psutil.Process], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(process.pid)
        if not (
            is_running(process)
            or (process.group and _group_alive(process.pid))
            or any(_alive(child) for child in descendants)
        ):
            return True
        time.sleep(0.1)
    return False


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is still alive (zombies waiting to be reaped do not count)."""
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def _reap(pid: int) -> None:
    # A process started by this very process (tests, `up` then `down` in one session) must be
    # waited for, or it lingers as a zombie.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


@contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    # A shell starts `cmd &` with SIGINT ignored, children inherit that through exec, and the
    # Prefect worker then ignores SIGTERM too. A handler (unlike SIG_IGN) resets to default on exec.
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _record(paths: StackPaths, state: StackState, process: Process) -> None:
    state.processes = [p for p in state.processes if p.name != process.name] + [process]
    save_state(paths, state)


def _console_script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())
