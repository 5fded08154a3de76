"""Prefect asset events for what a run writes: the raw table, dbt's models with prefect-dbt's keys, the marts.

The keys are the ones prefect-dbt's PrefectDbtRunner gives dbt nodes (`postgres://<db>/<schema>/<table>`),
so the pipeline's own tables join dbt's lineage: source API → raw → staging → audit → marts.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect.assets import Asset, AssetProperties
from prefect.context import AssetContext
from prefect.states import Completed, Failed
from prefect.types.names import MAX_ASSET_KEY_LENGTH, RESTRICTED_ASSET_CHARACTERS

# prefect_dbt imports dbt (~2.5 s): only the functions that read dbt's manifest import it.
if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

ADAPTER = "postgres"
DBT = "dbt"
PIPELINE = "weather-pipeline"
RAW_OBSERVATIONS = ("raw", "hourly_weather")
RAW_LOCATIONS = ("raw", "locations")
# Published table ← the audit model it is copied from.
PUBLISHED = {
    ("marts", "fct_daily_weather"): ("audit", "fct_daily_weather"),
    ("marts", "dim_locations"): ("audit", "dim_locations"),
}


@dataclass(frozen=True)
class Materialization:
    """One asset written (or not, `succeeded=False`) by `by`, from `upstream`."""

    asset: Asset
    upstream: tuple[Asset, ...] = ()
    succeeded: bool = True
    by: str = PIPELINE
    metadata: dict[str, Any] = field(default_factory=dict)


def table_key(database: str, schema: str, table: str) -> str:
    """The asset key prefect-dbt gives the relation `"database"."schema"."table"` (its `format_resource_id`).

    Written out here so the load step need not import dbt; a unit test holds it equal to prefect-dbt's.
    """
    return valid_key(f"{ADAPTER}://{database}/{schema}/{table}")


def valid_key(uri: str) -> str:
    """`uri` without the characters Prefect refuses in an asset key, cut to its longest key (as prefect-dbt does)."""
    for char in RESTRICTED_ASSET_CHARACTERS:
        uri = uri.replace(char, "")
    return uri[:MAX_ASSET_KEY_LENGTH]


def table_asset(database: str, schema: str, table: str) -> Asset:
    return Asset(
        key=table_key(database, schema, table), properties=AssetProperties(name=f"{database}.{schema}.{table}")
    )


def source_api_asset(base_url: str) -> Asset:
    """The archive endpoint the observations come from."""
    return Asset(
        key=f"{base_url.rstrip('/')}/v1/archive", properties=AssetProperties(name="Open-Meteo-compatible archive API")
    )


def raw_observations(database: str, source_url: str, rows: int, days: Iterable) -> Materialization:
    """raw.hourly_weather after a load, from the source API."""
    return Materialization(
        table_asset(database, *RAW_OBSERVATIONS),
        (source_api_asset(source_url),),
        metadata={"rows_loaded": rows, "days": sorted(str(day) for day in days)},
    )


def locations_file_asset(path: Path) -> Asset:
    """The CSV file that lists the locations, on the host that ran the load."""
    return Asset(key=valid_key(f"file://{path.resolve()}"), properties=AssetProperties(name=path.name))


def raw_locations(database: str, locations_file: Path, count: int) -> Materialization:
    """raw.locations after the locations file was merged into it."""
    return Materialization(
        table_asset(database, *RAW_LOCATIONS), (locations_file_asset(locations_file),), metadata={"locations": count}
    )


def published_marts(database: str, window: str) -> list[Materialization]:
    """marts.* after a publish, each from the audit model it copies."""
    return [
        Materialization(
            table_asset(database, *published), (table_asset(database, *audited),), metadata={"window": window}
        )
        for published, audited in PUBLISHED.items()
    ]


def dbt_materializations(manifest: "Manifest", results: Iterable) -> list[Materialization]:
    """A materialization per model, seed or snapshot the build ran, with prefect-dbt's keys and upstream assets."""
    from prefect_dbt.core.runner import MATERIALIZATION_NODE_TYPES

    adapter = manifest.metadata.adapter_type or ADAPTER
    done = []
    for node_result in results:
        node = manifest.nodes.get(node_result.node.unique_id, node_result.node)
        status = str(getattr(node_result.status, "value", node_result.status))
        if node.resource_type not in MATERIALIZATION_NODE_TYPES or not node.relation_name or status == "skipped":
            continue
        done.append(
            Materialization(
                node_asset(node, adapter),
                tuple(node_asset(upstream, adapter) for upstream in upstream_nodes(manifest, node)),
                succeeded=status == "success",
                by=DBT,
                metadata={
                    "unique_id": node.unique_id,
                    "resource_type": str(node.resource_type),
                    "materialized": node.config.materialized,
                    "node_status": status,
                    "execution_time": round(node_result.execution_time or 0.0, 3),
                },
            )
        )
    return done


def node_asset(node, adapter: str) -> Asset:
    """The asset prefect-dbt's runner makes for a dbt node: key, display name, description, owner."""
    from prefect_dbt.utilities import format_asset_name, format_resource_id

    meta = node.meta if node.resource_type == "source" else node.config.meta
    properties: dict[str, Any] = {"name": format_asset_name(node.relation_name)}
    if node.description:
        properties["description"] = node.description
    if isinstance(owner := meta.get("owner"), str):
        properties["owners"] = [owner]
    return Asset(key=format_resource_id(adapter, node.relation_name), properties=AssetProperties(**properties))


def upstream_nodes(manifest: "Manifest", node) -> list:
    """The nodes prefect-dbt's runner lists as a node's upstream assets: ephemeral models looked through, sources
    and exposures referenced, models, seeds and snapshots with assets enabled."""
    from prefect_dbt.core.runner import MATERIALIZATION_NODE_TYPES, REFERENCE_NODE_TYPES

    found, seen = [], set()

    def collect(current) -> None:
        for unique_id in current.depends_on_nodes:
            if unique_id in seen:
                continue
            seen.add(unique_id)
            upstream = manifest.nodes.get(unique_id) or manifest.sources.get(unique_id)
            if upstream is None or (unique_id in manifest.sources and not upstream.relation_name):
                continue
            if unique_id in manifest.nodes and upstream.config.materialized == "ephemeral":
                collect(upstream)
                continue
            meta = upstream.meta if unique_id in manifest.sources else upstream.config.meta
            enabled = meta.get("prefect", {}).get("enable_assets", True)
            if upstream.resource_type in REFERENCE_NODE_TYPES or (
                upstream.resource_type in MATERIALIZATION_NODE_TYPES and enabled
            ):
                found.append(upstream)

    collect(node)
    return found


def emit(materializations: Iterable[Materialization]) -> int:
    """Send each as Prefect's own asset events (referenced upstreams, then the materialization); returns the count.

    Sent from the calling task or flow run, so the events name it as their related run.
    """
    sent = 0
    for done in materializations:
        context = AssetContext(
            direct_asset_dependencies=set(done.upstream),
            downstream_assets={done.asset},
            materialized_by=done.by,
            materialization_metadata={done.asset.key: done.metadata},
        )
        context.emit_events(Completed() if done.succeeded else Failed())
        sent += len(done.upstream) + 1
    return sent
