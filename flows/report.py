"""Report a flow run the server saw crash: one signed `pipeline.run.failed` per run, started by an automation."""

from prefect import flow
from prefect.logging import get_run_logger

from blocks import resolve_resources
from pipeline.lookups import read_run
from pipeline.runs import ended_run_alert, send_alert


@flow(name="report-run", timeout_seconds=600)
def report_run(flow_run_id: str, kind: str = "crashed") -> dict:
    """Alert once that `flow_run_id` ended as `kind`; a crashed run never reaches its own state hook."""
    resources = resolve_resources()
    alert = ended_run_alert(read_run(flow_run_id), kind)
    alerted = send_alert(resources, alert)
    if not alerted:
        get_run_logger().info("%s of %s for %s already alerted", kind, alert.deployment, alert.logical_date)
    return {"alerted": alerted, **alert.data}
