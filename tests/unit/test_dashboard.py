"""The dashboard spec, Superset's URL forms and the secret file: pure functions."""

import json
import re
import stat

from pipeline.dashboard import server, spec
from pipeline.dashboard.client import rison


def test_rison_writes_superset_list_filters():
    query = {"filters": [{"col": "slice_name", "opr": "eq", "value": "Data as of"}], "page_size": 2}

    assert rison(query) == "(filters:!((col:'slice_name',opr:'eq',value:'Data as of')),page_size:2)"


def test_rison_escapes_quotes_and_bangs():
    assert rison("it's here!") == "'it!'s here!!'"
    assert rison([True, False, None]) == "!(!t,!f,!n)"


def test_spec_datasets_read_marts_only():
    for dataset in spec.DATASETS:
        tables = re.findall(r"\b(?:from|join)\s+([\w.]+)", dataset.sql or f"from {spec.SCHEMA}.{dataset.name}")
        assert tables and all(table.startswith("marts.") for table in tables), (dataset.name, tables)
        assert spec.dataset_key(dataset, 1) == {"database": 1, "schema": "marts", "table_name": dataset.name}


def test_spec_layout_places_every_chart_once_within_twelve_columns():
    placed = [name for row in spec.LAYOUT for name, _, _ in row]

    assert sorted(placed) == sorted(chart.name for chart in spec.CHARTS)
    assert all(sum(width for _, width, _ in row) <= 12 for row in spec.LAYOUT)


def test_position_links_each_chart_component_to_its_id_and_row():
    ids = {chart.name: number for number, chart in enumerate(spec.CHARTS, start=10)}

    layout = spec.position(ids)

    charts = {key: value for key, value in layout.items() if key.startswith("CHART-")}
    assert {value["meta"]["chartId"] for value in charts.values()} == set(ids.values())
    for key, value in charts.items():
        row = value["parents"][-1]
        assert key in layout[row]["children"]
        assert row in layout["GRID_ID"]["children"]


def test_chart_body_points_form_data_and_query_context_at_its_dataset():
    chart = next(chart for chart in spec.CHARTS if chart.viz_type == "echarts_timeseries_line")

    body = spec.chart_body(chart, dataset_id=7, dashboard_id=3)

    params, context = json.loads(body["params"]), json.loads(body["query_context"])
    assert params["datasource"] == "7__table"
    assert context["datasource"] == {"id": 7, "type": "table"}
    assert context["queries"][0]["columns"][0]["sqlExpression"] == "weather_date"
    assert body["dashboards"] == [3]


def test_uncached_datasets_leave_their_charts_out_of_the_warm_up():
    assert spec.cached_charts() == {
        "Daily mean temperature (°C)",
        "Daily min and max temperature (°C)",
        "Daily precipitation (mm)",
        "Last 7 days",
    }


def test_sqlalchemy_url_carries_host_port_and_the_override():
    url = server.sqlalchemy_url(
        "postgresql://postgres@127.0.0.1:5432/weather", "psycopg2", user="reader", password="p@ss"
    )

    assert url == "postgresql+psycopg2://reader:p%40ss@127.0.0.1:5432/weather"


def test_sqlalchemy_url_puts_a_socket_directory_in_the_query():
    url = server.sqlalchemy_url("host=/tmp/pg port=5433 dbname=weather user=weather", "psycopg2", dbname="superset")

    assert url == "postgresql+psycopg2://weather@:5433/superset?host=%2Ftmp%2Fpg"


def test_ensure_secrets_generates_once_and_keeps_the_file_private(tmp_path):
    path = tmp_path / "superset" / "secrets.env"

    first = server.ensure_secrets(path)
    second = server.ensure_secrets(path)

    assert first == second
    assert set(first) == set(server.SECRET_NAMES)
    assert len({first[name] for name in server.SECRET_NAMES}) == len(server.SECRET_NAMES)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_read_env_file_reads_systemd_style_lines(tmp_path):
    path = tmp_path / "weather.env"
    path.write_text("# a comment\nA=1\nB = two=2\n\n", encoding="utf-8")

    assert server.read_env_file(path) == {"A": "1", "B": "two=2"}
