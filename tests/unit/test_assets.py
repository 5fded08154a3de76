from datetime import date
from pathlib import Path

from prefect_dbt.utilities import format_resource_id

from pipeline import assets


def test_table_key_is_prefect_dbts_key_for_the_same_relation():
    assert assets.table_key("weather", "raw", "hourly_weather") == format_resource_id(
        "postgres", '"weather"."raw"."hourly_weather"'
    )
    assert assets.table_key("weather", "raw", "hourly_weather") == "postgres://weather/raw/hourly_weather"


def test_raw_observations_come_from_the_source_apis_archive_endpoint():
    done = assets.raw_observations("weather", "http://127.0.0.1:8123/", 48, [date(2024, 3, 9), date(2024, 3, 8)])

    assert done.asset.key == "postgres://weather/raw/hourly_weather"
    assert [upstream.key for upstream in done.upstream] == ["http://127.0.0.1:8123/v1/archive"]
    assert done.metadata == {"rows_loaded": 48, "days": ["2024-03-08", "2024-03-09"]}
    assert done.by == "weather-pipeline"


def test_raw_locations_come_from_the_locations_file_with_a_valid_key(tmp_path: Path):
    listed = tmp_path / "my locations" / "cities.csv"

    done = assets.raw_locations("weather", listed, 3)

    assert done.asset.key == "postgres://weather/raw/locations"
    assert [upstream.key for upstream in done.upstream] == [f"file://{tmp_path}/mylocations/cities.csv"]
    assert done.upstream[0].properties.name == "cities.csv"
    assert done.metadata == {"locations": 3}


def test_published_marts_each_come_from_their_audit_model():
    lineage = {
        done.asset.key: [upstream.key for upstream in done.upstream]
        for done in assets.published_marts("weather", "2024-03-09")
    }

    assert lineage == {
        "postgres://weather/marts/fct_daily_weather": ["postgres://weather/audit/fct_daily_weather"],
        "postgres://weather/marts/dim_locations": ["postgres://weather/audit/dim_locations"],
    }
