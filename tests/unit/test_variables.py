"""`extract.VARIABLES` is the one list of API variables: everything that names them follows it."""

import re
from pathlib import Path

import pytest
import yaml

from pipeline import load, source_server, warehouse
from pipeline.extract import VARIABLES

STAGING = Path(__file__).parents[2] / "dbt_project" / "models" / "staging" / "open_meteo"
KEYS = ("location_id", "observed_at")


def staging_select_list() -> list[str]:
    """The names `stg_open_meteo__hourly_weather.sql` selects, in order."""
    text = (STAGING / "stg_open_meteo__hourly_weather.sql").read_text(encoding="utf-8")
    body = re.sub(r"\{#.*?#\}", "", text, flags=re.DOTALL)
    select_list = re.search(r"^select\n(.*?)^from ", body, flags=re.DOTALL | re.MULTILINE)
    assert select_list, "the staging model is one flat select"
    return [re.split(r"\s+as\s+", line.strip().rstrip(","))[-1] for line in select_list.group(1).splitlines()]


def staging_columns() -> dict[str, dict]:
    models = yaml.safe_load((STAGING / "_open_meteo__models.yml").read_text(encoding="utf-8"))["models"]
    model = next(model for model in models if model["name"] == "stg_open_meteo__hourly_weather")
    return {column["name"]: column for column in model["columns"]}


def test_the_staging_model_selects_the_keys_its_date_every_variable_and_the_load_time():
    assert staging_select_list() == [*KEYS, "weather_date", *VARIABLES, "_loaded_at"]


def test_the_staging_yaml_describes_and_tests_every_variable_and_nothing_else():
    columns = staging_columns()
    assert list(columns) == staging_select_list()
    for variable in VARIABLES:
        assert columns[variable].get("description"), f"{variable} has no description"
        assert columns[variable].get("data_tests"), f"{variable} has no data test (a range at least)"


def test_the_source_yaml_leaves_the_variables_to_the_staging_yaml():
    sources = yaml.safe_load((STAGING / "_open_meteo__sources.yml").read_text(encoding="utf-8"))["sources"]
    table = next(table for table in sources[0]["tables"] if table["name"] == "hourly_weather")
    assert not {column["name"] for column in table["columns"]} & set(VARIABLES)


def test_the_local_source_serves_every_variable():
    assert set(VARIABLES) <= set(source_server.UNITS)


def test_the_copy_writes_the_keys_then_the_variables_in_the_order_of_the_binary_rows():
    statement = load.copy_statement().as_string()
    columns = re.search(r"copy \"raw\".\"hourly_weather\" \((.*)\) from stdin", statement)
    assert columns, statement
    assert [name.strip().strip('"') for name in columns.group(1).split(",")] == [*KEYS, *VARIABLES]


@pytest.mark.parametrize("name", ["record_success", "raw_day_checksums"])
def test_completeness_and_checksums_read_every_variable(name):
    statement = warehouse.hourly_query(name).as_string()
    assert all(f'"{variable}"' in statement for variable in VARIABLES)
    assert "{" not in statement
