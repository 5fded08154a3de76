"""The weather dashboard as code: its datasets (on `marts.*` only), charts and layout, as Superset's API takes them.

Pure functions of the ids Superset gave the objects; `pipeline.dashboard.deploy` applies them.
To add a chart: add a `Chart` to CHARTS and its name to a row of LAYOUT, then `pipeline dashboard deploy`.
"""

import json
from dataclasses import dataclass, field
from typing import Any

DATABASE_NAME = "weather"
DASHBOARD_SLUG = "weather"
DASHBOARD_TITLE = "Weather"
# Tables the read-only role may read; every dataset names its tables here or in its SQL.
SCHEMA = "marts"
# The dataset's results are never cached: it reads the clock (freshness, the day due).
UNCACHED = -1

# The daily fact with each location's name, for charts that group by location.
DAILY_WEATHER_SQL = """\
select weather.*, locations.location_name
from marts.fct_daily_weather as weather
inner join marts.dim_locations as locations on weather.location_id = locations.location_id"""
# The last 7 published days, whatever today is: a backfilled history shows its own last week.
LAST_7_DAYS_SQL = """\
select weather.*, locations.location_name
from marts.fct_daily_weather as weather
inner join marts.dim_locations as locations on weather.location_id = locations.location_id
where weather.weather_date > (select max(weather_date) from marts.fct_daily_weather) - 7"""


@dataclass(frozen=True)
class Dataset:
    name: str
    sql: str | None = None  # None: the physical table `marts.<name>`
    cache_timeout: int | None = None  # None: Superset's default (until the pipeline refreshes it)


@dataclass(frozen=True)
class Chart:
    name: str
    dataset: str
    viz_type: str
    params: dict[str, Any]
    query: dict[str, Any] = field(default_factory=dict)


DATASETS = [
    Dataset("rpt_freshness", cache_timeout=UNCACHED),
    Dataset("rpt_day_status", cache_timeout=UNCACHED),
    Dataset("daily_weather", sql=DAILY_WEATHER_SQL),
    Dataset("last_7_days", sql=LAST_7_DAYS_SQL),
]


def _metric(expression: str, label: str) -> dict:
    return {"expressionType": "SQL", "sqlExpression": expression, "label": label}


def _card(template: str) -> dict:
    return {"query_mode": "raw", "handlebarsTemplate": template, "styleTemplate": "", "row_limit": 1}


def _daily_series(metrics: list[dict], viz_type: str, **extra: Any) -> dict:
    params = {
        "x_axis": "weather_date",
        "time_grain_sqla": "P1D",
        "metrics": metrics,
        "groupby": ["location_name"],
        "row_limit": 10000,
        "show_legend": True,
        "rich_tooltip": True,
        "x_axis_time_format": "%Y-%m-%d",
        **extra,
    }
    return {"viz_type": viz_type, "params": params}


def _table(columns: list[str], order_by: str, row_limit: int) -> dict:
    params = {
        "query_mode": "raw",
        "all_columns": columns,
        "order_by_cols": [json.dumps([order_by, False])],
        "row_limit": row_limit,
        "server_pagination": False,
        "table_timestamp_format": "%Y-%m-%d",
        "show_cell_bars": False,
    }
    query = {"columns": columns, "orderby": [[order_by, False]], "row_limit": row_limit}
    return {"viz_type": "table", "params": params, "query": query}


AS_OF = """\
{{#each data}}
<div style="padding: 8px 16px;">
<div style="font-size: 14px; color: #555;">Data as of</div>
<div style="font-size: 44px; font-weight: 600; line-height: 1.2;">{{dateFormat latest_date format="YYYY-MM-DD"}}</div>
<div style="font-size: 16px; color: #555;">{{location_count}} locations</div>
</div>
{{/each}}"""
FRESHNESS = """\
{{#each data}}
{{#if is_late}}
<div style="background: #c62828; color: #fff; padding: 16px; border-radius: 6px; font-size: 30px; font-weight: 700;">\
{{freshness_label}}</div>
<div style="padding: 6px 2px; color: #555;">\
The day due, {{dateFormat due_date format="YYYY-MM-DD"}}, has not landed.</div>
{{else}}
<div style="background: #2e7d32; color: #fff; padding: 16px; border-radius: 6px; font-size: 30px; font-weight: 700;">\
{{freshness_label}}</div>
{{/if}}
{{/each}}"""

CHARTS = [
    Chart(
        "Data as of",
        "rpt_freshness",
        "handlebars",
        _card(AS_OF) | {"all_columns": ["latest_date", "location_count"]},
        {"columns": ["latest_date", "location_count"], "row_limit": 1},
    ),
    Chart(
        "Freshness",
        "rpt_freshness",
        "handlebars",
        _card(FRESHNESS) | {"all_columns": ["is_late", "freshness_label", "due_date"]},
        {"columns": ["is_late", "freshness_label", "due_date"], "row_limit": 1},
    ),
    Chart(
        "Daily mean temperature (°C)",
        "daily_weather",
        **_daily_series([_metric("AVG(temperature_2m_mean)", "mean")], "echarts_timeseries_line"),
    ),
    Chart(
        "Daily min and max temperature (°C)",
        "daily_weather",
        **_daily_series(
            [_metric("MIN(temperature_2m_min)", "min"), _metric("MAX(temperature_2m_max)", "max")],
            "echarts_timeseries_line",
        ),
    ),
    Chart(
        "Daily precipitation (mm)",
        "daily_weather",
        **_daily_series([_metric("SUM(precipitation_sum)", "precipitation")], "echarts_timeseries_bar", stack="Stack"),
    ),
    Chart(
        "Last 7 days",
        "last_7_days",
        **_table(
            [
                "weather_date",
                "location_name",
                "temperature_2m_min",
                "temperature_2m_mean",
                "temperature_2m_max",
                "precipitation_sum",
            ],
            "weather_date",
            1000,
        ),
    ),
    Chart(
        "Day status",
        "rpt_day_status",
        **_table(["logical_date", "day_status", "row_count", "loaded_at", "published_at"], "logical_date", 14),
    ),
]

# Rows of (chart name, width of 12, height in grid units of 8 px).
LAYOUT = [
    [("Data as of", 5, 32), ("Freshness", 7, 32)],
    [("Daily mean temperature (°C)", 6, 50), ("Daily min and max temperature (°C)", 6, 50)],
    [("Last 7 days", 12, 50)],
    [("Daily precipitation (mm)", 6, 50), ("Day status", 6, 50)],
]


def cached_charts() -> set[str]:
    """Names of the charts whose results Superset caches, which a refresh computes again."""
    uncached = {dataset.name for dataset in DATASETS if dataset.cache_timeout == UNCACHED}
    return {chart.name for chart in CHARTS if chart.dataset not in uncached}


def database_body(sqlalchemy_uri: str) -> dict:
    """The warehouse connection: read-only by its role, not exposed in SQL Lab."""
    return {
        "sqlalchemy_uri": sqlalchemy_uri,
        "expose_in_sqllab": False,
        "allow_dml": False,
        "allow_file_upload": False,
        "allow_run_async": False,
    }


def dataset_key(dataset: Dataset, database_id: int) -> dict:
    return {"database": database_id, "schema": SCHEMA, "table_name": dataset.name}


def dataset_body(dataset: Dataset) -> dict:
    """What an update sets (a create takes the key and this)."""
    body: dict[str, Any] = {"cache_timeout": dataset.cache_timeout}
    if dataset.sql is not None:
        body["sql"] = dataset.sql
    return body


def chart_body(chart: Chart, dataset_id: int, dashboard_id: int) -> dict:
    """A chart's form data, and the query context that the refresh's cache warm-up runs."""
    datasource = f"{dataset_id}__table"
    params = {"viz_type": chart.viz_type, "datasource": datasource, "time_range": "No filter", **chart.params}
    query = {
        "columns": [],
        "metrics": params.get("metrics", []),
        "filters": [],
        "extras": {"having": "", "where": ""},
        "time_range": "No filter",
        "row_limit": params.get("row_limit", 10000),
    }
    if "x_axis" in params:
        axis = {
            "columnType": "BASE_AXIS",
            "expressionType": "SQL",
            "sqlExpression": params["x_axis"],
            "label": params["x_axis"],
            "timeGrain": params["time_grain_sqla"],
        }
        query |= {"columns": [axis, *params["groupby"]], "series_columns": params["groupby"]}
    query |= chart.query
    query_context = {
        "datasource": {"id": dataset_id, "type": "table"},
        "force": False,
        "queries": [query],
        "form_data": params,
        "result_format": "json",
        "result_type": "full",
    }
    return {
        "viz_type": chart.viz_type,
        "datasource_id": dataset_id,
        "datasource_type": "table",
        "params": json.dumps(params),
        "query_context": json.dumps(query_context),
        "dashboards": [dashboard_id],
    }


def position(chart_ids: dict[str, int]) -> dict:
    """Superset's layout tree (v2): a grid of LAYOUT's rows, each chart by its id."""
    layout: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": DASHBOARD_TITLE}},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
    }
    for number, row in enumerate(LAYOUT, start=1):
        row_id = f"ROW-{number}"
        layout["GRID_ID"]["children"].append(row_id)
        layout[row_id] = {
            "type": "ROW",
            "id": row_id,
            "children": [],
            "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        for name, width, height in row:
            chart_id = chart_ids[name]
            component = f"CHART-{chart_id}"
            layout[row_id]["children"].append(component)
            layout[component] = {
                "type": "CHART",
                "id": component,
                "children": [],
                "parents": ["ROOT_ID", "GRID_ID", row_id],
                "meta": {"chartId": chart_id, "sliceName": name, "width": width, "height": height},
            }
    return layout


def dashboard_body(chart_ids: dict[str, int]) -> dict:
    metadata = {"color_scheme": "supersetColors", "refresh_frequency": 0, "cross_filters_enabled": False}
    return {
        "dashboard_title": DASHBOARD_TITLE,
        "position_json": json.dumps(position(chart_ids)),
        "json_metadata": json.dumps(metadata),
        "published": True,
    }
