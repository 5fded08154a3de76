"""`pipeline dashboard deploy`: apply the dashboard spec to a Superset, creating or updating each object by name."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from blocks import Warehouse
from pipeline import warehouse
from pipeline.dashboard import server, spec
from pipeline.dashboard.client import SupersetClient, SupersetError
from pipeline.transform import dbt_environment, profiles_dir


@dataclass(frozen=True)
class Deployed:
    dashboard_id: int
    url: str
    dataset_ids: dict[str, int]
    chart_ids: dict[str, int]


def apply(client: SupersetClient, sqlalchemy_uri: str) -> Deployed:
    """Make the Superset at `client` hold exactly the spec's connection, datasets, charts and dashboard.

    Idempotent: a second call updates the same objects in place.
    """
    database_id = client.upsert("database", {"database_name": spec.DATABASE_NAME}, spec.database_body(sqlalchemy_uri))
    dataset_ids = {}
    for dataset in spec.DATASETS:
        key = spec.dataset_key(dataset, database_id)
        dataset_ids[dataset.name] = client.upsert("dataset", key, spec.dataset_body(dataset), create=("sql",))
        # Columns as the view or query has them now (a dbt change may have renamed one).
        client.put(f"/dataset/{dataset_ids[dataset.name]}/refresh", {})
    dashboard_id = client.upsert("dashboard", {"slug": spec.DASHBOARD_SLUG}, {"dashboard_title": spec.DASHBOARD_TITLE})
    chart_ids = {
        chart.name: client.upsert(
            "chart", {"slice_name": chart.name}, spec.chart_body(chart, dataset_ids[chart.dataset], dashboard_id)
        )
        for chart in spec.CHARTS
    }
    client.put(f"/dashboard/{dashboard_id}", spec.dashboard_body(chart_ids))
    return Deployed(dashboard_id, f"{client.url}/superset/dashboard/{spec.DASHBOARD_SLUG}/", dataset_ids, chart_ids)


def prepare_warehouse(dsn: str, reader_password: str, project_dir: Path) -> None:
    """Make the warehouse ready for Superset: migrated (the read-only role), its password and grants set, the
    dashboard's views built and tested."""
    with warehouse.connect(dsn, autocommit=True) as conn:
        warehouse.migrate(conn)
        server.set_reader_password(conn, reader_password)
        conn.execute(warehouse.query("grant_dashboard_reader"))
    build_views(dsn, project_dir)


def build_views(dsn: str, project_dir: Path) -> None:
    """`dbt build` of the dashboard's views (~10 s): runs leave them out (dbt_project/selectors.yml)."""
    dbt = Path(sys.executable).with_name("dbt")
    argv = [str(dbt), "build", "--select", "path:models/dashboard"]
    target = Warehouse.from_url(dsn)
    with profiles_dir(target) as profiles:
        result = subprocess.run(
            [*argv, "--project-dir", str(project_dir), "--profiles-dir", str(profiles)],
            env={**os.environ, **dbt_environment(target)},
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise SupersetError(f"building the dashboard's views failed: {result.stdout[-2000:]}")
