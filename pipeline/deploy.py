"""Prepare a Prefect server for the pipeline: work pool, queues, rate limit, blocks, deployments, automations."""

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.events.schemas.automations import AutomationCore
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, get_current_settings
from prefect.workers.process import ProcessWorker

from blocks import apply_blocks
from pipeline.concurrency import RATE_LIMIT_DECAY_PER_SECOND, RATE_LIMIT_SLOTS, ensure_rate_limit
from pipeline.processes import tail
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.spread import ensure_chunk_limit

DEFAULT_POOL = "weather-pool"
# Lower is served first: a waiting daily run is picked before any backfill run.
QUEUES = {"daily": 1, "backfill": 10}
AUTOMATIONS = Path("deployments") / "automations"

Say = Callable[[str], None]


class DeployError(Exception):
    """The server could not be prepared to run the pipeline."""


def configure_server(settings: Settings, pool: str, project_dir: Path = PROJECT_ROOT, say: Say = print) -> None:
    """Make the server in PREFECT_API_URL ready to run the pipeline; every step is idempotent."""
    say(ensure_work_pool(pool, QUEUES))
    if settings.source_rate_limit:
        say(ensure_rate_limit(settings.source_rate_limit, RATE_LIMIT_SLOTS, RATE_LIMIT_DECAY_PER_SECOND))
    say(ensure_chunk_limit(settings.backfill_workers))
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
            raise DeployError(f"work pool {pool!r} exists with type {existing.type!r}; the pipeline needs 'process'")
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
        raise DeployError(f"prefect deploy --all failed (exit {result.returncode}): {tail(output)}")
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
        raise DeployError(f"an automation runs deployment {deployment!r}, which prefect.yaml does not deploy") from None


def automation_specs(document: object) -> list[dict]:
    """The automations in one file, in any shape `prefect automation create --from-file` accepts."""
    if isinstance(document, dict) and "automations" in document:
        return list(document["automations"])
    if isinstance(document, list):
        return document
    return [document] if document else []


def default_pool() -> str:
    """The work pool deployments go to: PREFECT_DEFAULT_WORK_POOL_NAME, else weather-pool."""
    return get_current_settings().deployments.default_work_pool_name or DEFAULT_POOL
