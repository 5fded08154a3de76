"""`pipeline dashboard deploy`: apply the dashboard spec to a Superset, creating or updating each object by name."""

from dataclasses import dataclass

from pipeline.dashboard import spec
from pipeline.dashboard.client import SupersetClient


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
