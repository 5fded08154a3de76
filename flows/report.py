"""Report a flow run the server saw crash: one signed `pipeline.run.failed` per run, started by an automation."""

from datetime import date, datetime
from uuid import UUID

from prefect import flow, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.logging import get_run_logger

from blocks import resolve_resources
from pipeline import alerts, notify, warehouse
from pipeline.lookups import run_link
from pipeline.window import logical_date_for


@flow(name="report-run", timeout_seconds=600)
def report_run(flow_run_id: str, kind: str = "crashed") -> dict:
    """Alert once that `flow_run_id` ended as `kind`; a crashed run never reaches its own state hook."""
    resources = resolve_resources()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        deployment = client.read_deployment(run.deployment_id) if run.deployment_id else None
        flow_name = client.read_flow(run.flow_id).name
    key = f"{flow_name}/{deployment.name if deployment else 'local'}"
    day = run_logical_date(run)
    data = {
        "deployment": deployment.name if deployment else None,
        "flow": flow_name,
        "flow_run": {"id": flow_run_id, "name": run.name, "state": run.state_name, "url": run_link(flow_run_id)},
        "logical_date": day.isoformat(),
        "failed_step": kind,
        "error": run.state.message if run.state else None,
    }
    with resources.warehouse.connect(autocommit=True) as conn:
        # Without ops.alerts every claim succeeds: a crash before the first load must dedupe too.
        warehouse.migrate(conn)
        first = alerts.send(conn, resources, [alerts.Alert(notify.RUN_FAILED, data, key, day, kind, flow_run_id)])
    if not first:
        get_run_logger().info("%s of %s for %s already alerted", kind, key, day)
        return {"alerted": False, **data}
    return {"alerted": True, **data}


def run_logical_date(run: FlowRun) -> date:
    """The run's `logical_date` parameter, else the UTC day before it was expected to start (as scheduled runs do)."""
    if run.parameters.get("logical_date"):
        return date.fromisoformat(str(run.parameters["logical_date"]))
    return logical_date_for(datetime.fromisoformat(run.expected_start_time.isoformat()))
