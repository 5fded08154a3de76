"""What the Prefect server knows about runs: the current run's logical date, links, a day's daily run."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

from prefect import get_client, runtime
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterExpectedStartTime,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_UI_URL
from pydantic import BaseModel, ConfigDict

from pipeline.window import logical_date_for


class SeenRun(BaseModel):
    """A day's daily run as the Prefect server reported it, or `unknown` (with why) when it could not say."""

    model_config = ConfigDict(frozen=True)

    state: str | None
    id: str | None = None
    name: str | None = None
    url: str | None = None
    error: str | None = None

    @classmethod
    def unknown(cls, error: str) -> "SeenRun":
        return cls(state="unknown", error=error)

    def data(self) -> dict:
        """As a notification's `data` carries it: the fields the server (or the failure) gave."""
        return self.model_dump(exclude_unset=True)


def scheduled_logical_date() -> date:
    """The logical date of the current flow run, from its *scheduled* start time."""
    scheduled = runtime.flow_run.scheduled_start_time
    return logical_date_for(datetime.fromisoformat(scheduled.isoformat()))


def run_link(flow_run_id: str | None) -> str | None:
    ui_url = PREFECT_UI_URL.value()
    return f"{ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui_url and flow_run_id else None


def deployment_key(flow_name: str, deployment_name: str | None) -> str:
    """`<flow>/<deployment>`, or `<flow>/local` for a run started by hand: whose alerts they are."""
    return f"{flow_name}/{deployment_name or 'local'}"


def daily_run_for(logical_date: date, deployment_name: str) -> SeenRun | None:
    """The newest flow run of the daily deployment scheduled for `logical_date`, as the Prefect server knows it."""
    scheduled_from = datetime.combine(logical_date + timedelta(days=1), time(), tzinfo=UTC)
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(deployment_name)
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]),
                expected_start_time=FlowRunFilterExpectedStartTime(
                    after_=scheduled_from, before_=scheduled_from + timedelta(days=1) - timedelta(microseconds=1)
                ),
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
    if not runs:
        return None
    run = runs[0]
    return SeenRun(id=str(run.id), name=run.name, state=run.state_name, url=run_link(str(run.id)))


@dataclass(frozen=True)
class KnownRun:
    """A flow run with the names of its flow and deployment, as the Prefect server knows them."""

    run: FlowRun
    flow_name: str
    deployment_name: str | None
    # The flow run that started this one through a task (a spread backfill, for its chunk runs).
    parent_run_id: UUID | None = None

    @property
    def key(self) -> str:
        return deployment_key(self.flow_name, self.deployment_name)

    @property
    def logical_date(self) -> date:
        """The run's `logical_date` parameter, else the UTC day before it was expected to start (as scheduled
        runs do)."""
        if self.run.parameters.get("logical_date"):
            return date.fromisoformat(str(self.run.parameters["logical_date"]))
        return logical_date_for(datetime.fromisoformat(self.run.expected_start_time.isoformat()))


def read_run(flow_run_id: str) -> KnownRun:
    """The flow run `flow_run_id`, its flow's name, its deployment's and the run that started it, if one did."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        deployment = client.read_deployment(run.deployment_id) if run.deployment_id else None
        parent = client.read_task_run(run.parent_task_run_id).flow_run_id if run.parent_task_run_id else None
        return KnownRun(run, client.read_flow(run.flow_id).name, deployment.name if deployment else None, parent)
