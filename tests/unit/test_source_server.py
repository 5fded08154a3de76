"""The local archive server's data and fault plans; fault delivery runs a server in-process."""

import random
from datetime import UTC, date, datetime, timedelta, timezone

import httpx
import numpy as np
import orjson
import pytest

from pipeline import extract
from pipeline.extract import PermanentSourceError, expected_times, parse_payload, request_params
from pipeline.locations import Location
from pipeline.source_server import (
    ARCHIVE_PATH,
    PAYLOAD_FAULTS,
    UNITS,
    VARIABLES,
    ArchiveQuery,
    FaultPlan,
    archive_objects,
    encode_archive,
    generate,
)
from pipeline.window import Window

WINDOW = Window(date(2024, 3, 9), date(2024, 3, 10))
LOCATIONS = (Location("ams", "Amsterdam", 52.37, 4.9), Location("cpt", "Cape Town", -33.92, 18.42))


def _column(answer: dict, name: str) -> np.ndarray:
    return np.asarray(answer["hourly"][name])


def test_generate_same_input_same_output():
    first = generate(52.52, 13.41, date(2024, 3, 1), date(2024, 3, 31), VARIABLES)
    second = generate(52.52, 13.41, date(2024, 3, 1), date(2024, 3, 31), VARIABLES)
    option = orjson.OPT_SERIALIZE_NUMPY
    assert orjson.dumps(first, option=option) == orjson.dumps(second, option=option)


def test_generate_hour_independent_of_range():
    month = generate(-33.92, 18.42, "2024-03-01", "2024-03-31", VARIABLES)
    day = generate(-33.92, 18.42, "2024-03-09", "2024-03-09", VARIABLES)
    offset = 8 * 24
    assert month["hourly"]["time"][offset : offset + 24] == day["hourly"]["time"]
    for name in VARIABLES:
        assert _column(month, name)[offset : offset + 24].tolist() == _column(day, name).tolist()


def test_archive_objects_location_independent_of_others():
    latitudes, longitudes = (64.15, 0.0, -45.3), (-21.94, 100.1, 170.6)
    query = ArchiveQuery(latitudes, longitudes, date(2023, 12, 30), date(2024, 1, 2), VARIABLES)
    together = list(archive_objects(query))
    for index, (latitude, longitude) in enumerate(zip(latitudes, longitudes, strict=True)):
        alone = generate(latitude, longitude, date(2023, 12, 30), date(2024, 1, 2), VARIABLES)
        for name in VARIABLES:
            assert _column(together[index], name).tolist() == _column(alone, name).tolist()


def test_generate_timestamps_24_per_day():
    answer = generate(10.0, 10.0, date(2024, 2, 28), date(2024, 3, 1), ("temperature_2m",))
    start = datetime(2024, 2, 28)
    expected = [(start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M") for h in range(72)]
    assert answer["hourly"]["time"] == expected
    assert len(answer["hourly"]["temperature_2m"]) == 72


def test_generate_snaps_to_grid_centre():
    answer = generate(52.52, 13.41, "2024-03-09", "2024-03-09", ("temperature_2m",))
    assert (answer["latitude"], answer["longitude"]) == (52.5, 13.5)
    same_cell = generate(52.45, 13.55, "2024-03-09", "2024-03-09", ("temperature_2m",))
    assert (same_cell["latitude"], same_cell["longitude"]) == (52.5, 13.5)
    assert same_cell["elevation"] == answer["elevation"]
    assert _column(same_cell, "temperature_2m").tolist() == _column(answer, "temperature_2m").tolist()
    south = generate(-33.9249, 18.4241, "2024-03-09", "2024-03-09", ())
    assert (south["latitude"], south["longitude"]) == (-34.0, 18.5)


def test_generate_describes_units_and_metadata():
    answer = generate(0.1, 0.1, "2024-03-09", "2024-03-09", ("precipitation", "cloud_cover"))
    assert answer["hourly_units"] == {"time": "iso8601", "precipitation": "mm", "cloud_cover": "%"}
    assert list(answer["hourly"]) == ["time", "precipitation", "cloud_cover"]
    assert answer["timezone"] == answer["timezone_abbreviation"] == "GMT"
    assert answer["utc_offset_seconds"] == 0
    assert isinstance(answer["elevation"], float) and isinstance(answer["generationtime_ms"], float)


@pytest.mark.parametrize("latitude", [-75.0, -33.9, 0.0, 45.0, 70.0])
def test_generate_plausible_over_a_year(latitude):
    answer = generate(latitude, 25.0, date(2023, 1, 1), date(2023, 12, 31), VARIABLES)
    column = {name: _column(answer, name) for name in VARIABLES}
    temperature = column["temperature_2m"]
    assert len(temperature) == 8760
    assert -60 <= temperature.min() and temperature.max() <= 55
    assert (column["dew_point_2m"] <= temperature).all()
    for name in ("relative_humidity_2m", "cloud_cover", "wind_direction_10m"):
        assert column[name].dtype.kind == "i"
    assert 0 <= column["relative_humidity_2m"].min() and column["relative_humidity_2m"].max() <= 100
    assert 0 <= column["cloud_cover"].min() and column["cloud_cover"].max() <= 100
    assert 0 <= column["wind_direction_10m"].min() and column["wind_direction_10m"].max() <= 360
    assert 0 <= column["wind_speed_10m"].min() and column["wind_speed_10m"].max() <= 150
    precipitation = column["precipitation"]
    assert precipitation.min() >= 0 and (precipitation == 0).mean() > 0.6
    sea_level = column["surface_pressure"] * np.exp(answer["elevation"] / 8434.0)
    assert 950 <= sea_level.min() and sea_level.max() <= 1050
    # The API gives one decimal, snowfall two, percentages and directions none (whole numbers).
    for name, unit in UNITS.items():
        assert np.array_equal(np.round(column[name], 2 if unit == "cm" else 1), column[name]), name


@pytest.mark.parametrize("latitude", [-75.0, -33.9, 0.0, 45.0, 70.0])
def test_generate_keeps_related_variables_consistent_over_a_year(latitude):
    answer = generate(latitude, 25.0, date(2023, 1, 1), date(2023, 12, 31), VARIABLES)
    column = {name: _column(answer, name) for name in VARIABLES}
    for name, unit in UNITS.items():
        assert column[name].dtype.kind == ("i" if unit in ("%", "°") else "f"), name
    assert (column["wind_gusts_10m"] > column["wind_speed_10m"]).all()
    assert (column["wind_speed_100m"] > column["wind_speed_10m"] * 1.2).all()
    assert 0 <= column["wind_direction_100m"].min() and column["wind_direction_100m"].max() <= 360
    # Precipitation is rain plus the snow's water (0.7 cm of snow per mm), each rounded as the API does.
    rain, snow_water = column["rain"], column["snowfall"] / 0.7
    assert (rain >= 0).all() and (snow_water >= 0).all()
    assert np.allclose(rain + snow_water, column["precipitation"], atol=0.08)
    assert (column["pressure_msl"] >= column["surface_pressure"]).all()
    temperature = column["temperature_2m"]
    assert (np.abs(column["apparent_temperature"] - temperature) < 15).all()
    radiation = column["shortwave_radiation"].reshape(365, 24)
    assert radiation.min() == 0 and radiation.max() <= 1000
    assert (radiation.min(axis=1) == 0).mean() > 0.6  # nights, on every day but those of a polar summer


def test_generate_snows_in_a_northern_winter_and_rains_in_the_tropics():
    winter = generate(64.15, -21.94, date(2023, 1, 1), date(2023, 2, 28), ("rain", "snowfall"))
    tropics = generate(1.35, 103.8, date(2023, 1, 1), date(2023, 2, 28), ("rain", "snowfall"))
    assert _column(winter, "snowfall").sum() > _column(winter, "rain").sum()
    assert _column(tropics, "snowfall").sum() == 0 < _column(tropics, "rain").sum()


def test_generate_sunlight_peaks_around_local_noon():
    # At 90°E local solar time runs six hours ahead of UTC; the hour ending 06:00 UTC holds noon.
    answer = generate(20.0, 90.0, date(2023, 6, 1), date(2023, 6, 30), ("shortwave_radiation",))
    by_hour = _column(answer, "shortwave_radiation").reshape(30, 24).mean(axis=0)
    assert by_hour.argmax() in (6, 7)
    assert by_hour[18] == 0


def test_generate_seasons_invert_between_hemispheres():
    def mean_temperature(latitude: float, month: int) -> float:
        answer = generate(latitude, 0.0, date(2023, month, 1), date(2023, month, 28), ("temperature_2m",))
        return float(_column(answer, "temperature_2m").mean())

    assert mean_temperature(50.0, 7) > mean_temperature(50.0, 1) + 10
    assert mean_temperature(-50.0, 1) > mean_temperature(-50.0, 7) + 10


def test_generate_afternoon_warmer_than_night_in_local_time():
    # At 90°E local solar time runs six hours ahead of UTC: 15:00 local is 09:00 UTC.
    answer = generate(20.0, 90.0, date(2023, 6, 1), date(2023, 6, 30), ("temperature_2m",))
    by_hour = _column(answer, "temperature_2m").reshape(30, 24).mean(axis=0)
    assert by_hour.argmax() in (8, 9, 10)
    assert by_hour[9] > by_hour[21] + 3


def test_generate_rejects_unknown_variable():
    with pytest.raises(ValueError, match="foo"):
        generate(0.0, 0.0, "2024-03-09", "2024-03-09", ("temperature_2m", "foo"))


def test_encode_archive_object_for_one_location_array_for_several():
    one = ArchiveQuery((1.0,), (2.0,), date(2024, 3, 9), date(2024, 3, 9), ("temperature_2m",))
    two = ArchiveQuery((1.0, 3.0), (2.0, 4.0), date(2024, 3, 9), date(2024, 3, 9), ("temperature_2m",))
    assert isinstance(orjson.loads(encode_archive(one)), dict)
    assert [answer["latitude"] for answer in orjson.loads(encode_archive(two))] == [1.0, 3.0]


def test_encode_archive_nulls_from_first_null_hour():
    query = ArchiveQuery((1.0,), (2.0,), date(2024, 3, 9), date(2024, 3, 10), ("cloud_cover", "precipitation"))
    first_null_hour = int(datetime(2024, 3, 10, 5, tzinfo=UTC).timestamp()) // 3600
    hourly = orjson.loads(encode_archive(query, first_null_hour))["hourly"]
    for name in ("cloud_cover", "precipitation"):
        assert all(value is not None for value in hourly[name][:29])
        assert hourly[name][29:] == [None] * 19


def test_fault_plan_parse_reads_every_setting():
    plan = FaultPlan.parse(
        "server_error=0.2, rate_limited=0.1,daily_limit=0.05,slow=0.05,slow_seconds=2,malformed=0.01,"
        "unequal=0.02,reset=0.03,missing_hours=0.04,wrong_types=0.05,dropped_location=0.06,"
        "recent_null_hours=72,available_until=2024-03-10T06:00:00+02:00,only_on=2024-03-03,seed=7"
    )
    assert plan == FaultPlan(
        server_error=0.2,
        rate_limited=0.1,
        daily_limit=0.05,
        slow=0.05,
        slow_seconds=2.0,
        malformed=0.01,
        unequal=0.02,
        reset=0.03,
        missing_hours=0.04,
        wrong_types=0.05,
        dropped_location=0.06,
        recent_null_hours=72,
        available_until=datetime(2024, 3, 10, 4, tzinfo=UTC),
        only_on=date(2024, 3, 3),
        seed=7,
    )


def test_fault_plan_parse_empty_means_no_faults():
    assert FaultPlan.parse("") == FaultPlan.parse(" , ") == FaultPlan()


def test_fault_plan_parse_naive_available_until_is_utc():
    plan = FaultPlan.parse("available_until=2024-03-10T06:00")
    assert plan.available_until == datetime(2024, 3, 10, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus=1", "bogus"),
        ("slow=abc", "slow: 'abc'"),
        ("server_error=1.5", "server_error"),
        ("server_error=nan", "server_error"),
        ("server_error", "not key=value"),
        ("seed=1.5", "seed"),
        ("recent_null_hours=-1", "recent_null_hours"),
        ("available_until=yesterday", "available_until"),
        ("slow=0.1,slow=0.2", "twice"),
        ("server_error=0.7,reset=0.5", "add up to 1.2"),
        ("missing_hours=1.5", "missing_hours"),
        ("wrong_types=-0.1", "wrong_types"),
        ("unequal=0.5,dropped_location=0.6", "add up to 1.1"),
        ("only_on=2024-02-30", "bad value for fault setting only_on: '2024-02-30'"),
        ("only_on=20240303", "bad value for fault setting only_on: '20240303'"),
        ("only_on=2024-03-03T00:00", "bad value for fault setting only_on"),
    ],
)
def test_fault_plan_parse_rejects_bad_settings(text, message):
    with pytest.raises(ValueError, match=message):
        FaultPlan.parse(text)


def test_fault_plan_rejects_datetime_only_on():
    with pytest.raises(ValueError, match="only_on"):
        FaultPlan(only_on=datetime(2024, 3, 3, tzinfo=UTC))


def test_fault_plan_rejects_naive_available_until():
    with pytest.raises(ValueError, match="available_until"):
        FaultPlan(available_until=datetime(2024, 3, 10))


def test_fault_plan_from_env_reads_variable(monkeypatch):
    monkeypatch.setenv("PIPELINE_SOURCE_FAULTS", "rate_limited=0.5,seed=3")
    assert FaultPlan.from_env() == FaultPlan(rate_limited=0.5, seed=3)
    monkeypatch.delenv("PIPELINE_SOURCE_FAULTS")
    assert FaultPlan.from_env() == FaultPlan()


def test_fault_plan_pick_follows_rates():
    plan = FaultPlan(server_error=0.2, rate_limited=0.1, reset=0.05, seed=1)
    rng = random.Random(plan.seed)
    picks = [plan.pick(rng) for _ in range(20_000)]
    assert abs(picks.count("server_error") / len(picks) - 0.2) < 0.02
    assert abs(picks.count("rate_limited") / len(picks) - 0.1) < 0.015
    assert abs(picks.count("reset") / len(picks) - 0.05) < 0.01
    assert abs(picks.count(None) / len(picks) - 0.65) < 0.02


def test_fault_plan_first_null_hour_counts_back_from_available_until():
    until = datetime(2024, 3, 10, 6, 30, tzinfo=timezone(timedelta(hours=1)))
    plan = FaultPlan(available_until=until, recent_null_hours=3)
    assert plan.first_null_hour() == int(datetime(2024, 3, 10, 3, tzinfo=UTC).timestamp()) // 3600
    assert FaultPlan(recent_null_hours=3).first_null_hour() is None


@pytest.mark.parametrize("fault", PAYLOAD_FAULTS[1:])
def test_fault_plan_pick_draws_payload_faults(fault):
    assert FaultPlan(**{fault: 1.0}).pick(random.Random(0)) == fault


def test_encode_archive_rejects_unknown_payload_fault():
    query = ArchiveQuery((1.0,), (2.0,), date(2024, 3, 9), date(2024, 3, 9), ("temperature_2m",))
    with pytest.raises(ValueError, match="reset"):
        encode_archive(query, fault="reset")


def _get(
    client: httpx.Client, locations: tuple[Location, ...] = LOCATIONS, window: Window = WINDOW, **overrides: str
) -> httpx.Response:
    """The request the pipeline itself sends, so parse_payload judges the answer as in production."""
    return client.get(ARCHIVE_PATH, params=request_params(locations, window) | overrides)


def _clean(location: Location, window: Window = WINDOW) -> dict:
    """The answer to the pipeline's request without faults, as it comes back from JSON."""
    answer = generate(location.latitude, location.longitude, window.first, window.last, extract.VARIABLES)
    return orjson.loads(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY))


def test_fault_missing_hours_drops_the_last_hour_of_the_first_location(client, server):
    server.faults = FaultPlan(missing_hours=1.0)
    response = _get(client)
    assert response.status_code == 200
    first, second = response.json()
    clean = _clean(LOCATIONS[0])
    assert first["hourly"]["time"] == expected_times(WINDOW)[:-1]
    assert first["hourly"] == {name: values[:-1] for name, values in clean["hourly"].items()}
    assert second == _clean(LOCATIONS[1])
    assert server.faults_injected == {"missing_hours": 1}
    with pytest.raises(PermanentSourceError, match=r"location 'ams'.*hourly\.time has 47 hours, expected 48"):
        parse_payload(response.content, LOCATIONS, WINDOW)


def test_fault_wrong_types_sends_the_first_value_as_a_string(client, server):
    server.faults = FaultPlan(wrong_types=1.0)
    response = _get(client)
    first, second = response.json()
    clean = _clean(LOCATIONS[0])
    sent = first["hourly"]["temperature_2m"][0]
    assert isinstance(sent, str) and float(sent) == clean["hourly"]["temperature_2m"][0]
    clean["hourly"]["temperature_2m"][0] = sent
    assert first == clean
    assert second == _clean(LOCATIONS[1])
    assert server.faults_injected == {"wrong_types": 1}
    with pytest.raises(PermanentSourceError, match="location 'ams'.*temperature_2m has non-numeric values"):
        parse_payload(response.content, LOCATIONS, WINDOW)


def test_fault_hot_day_heats_the_first_location_on_only_that_day(client, server):
    server.faults = FaultPlan(hot_day=1.0, only_on=date(2024, 3, 10))
    response = _get(client)
    first, second = response.json()
    clean = _clean(LOCATIONS[0])
    clean["hourly"]["temperature_2m"][24:] = [99.0] * 24
    assert first == clean
    assert second == _clean(LOCATIONS[1])
    assert server.faults_injected == {"hot_day": 1}
    parse_payload(response.content, LOCATIONS, WINDOW)  # well-formed: only the data tests can catch it


@pytest.mark.parametrize("count", [2, 1])
def test_fault_dropped_location_answers_one_location_fewer(client, server, count):
    locations = LOCATIONS[:count]
    server.faults = FaultPlan(dropped_location=1.0)
    response = _get(client, locations)
    assert response.status_code == 200
    assert response.json() == [_clean(location) for location in locations[:-1]]
    assert server.faults_injected == {"dropped_location": 1}
    expected = f"answered {count - 1} locations for window {WINDOW}, expected {count}"
    with pytest.raises(PermanentSourceError, match=expected):
        parse_payload(response.content, locations, WINDOW)


@pytest.mark.parametrize("fault", PAYLOAD_FAULTS)
def test_payload_faults_leave_answers_without_hourly_variables_alone(client, server, fault):
    clean = _get(client, hourly="").content
    server.faults = FaultPlan(**{fault: 1.0})
    assert _get(client, hourly="").content == clean
    assert server.faults_injected == {}


def test_only_on_faults_only_requests_covering_the_date(client, server):
    server.faults = FaultPlan(server_error=1.0, only_on=date(2024, 3, 10))
    before = _get(client, window=Window(date(2024, 3, 8), date(2024, 3, 9)))
    assert before.status_code == 200
    parse_payload(before.content, LOCATIONS, Window(date(2024, 3, 8), date(2024, 3, 9)))
    assert server.faults_injected == {}
    assert _get(client).status_code in (500, 502, 503)
    assert _get(client, window=Window(date(2024, 3, 10), date(2024, 3, 12))).status_code in (500, 502, 503)
    assert server.faults_injected == {"server_error": 2}
    assert server.requests == 3


def test_only_on_other_requests_leave_the_fault_sequence_alone(client, server):
    plan = FaultPlan(server_error=0.3, rate_limited=0.2, wrong_types=0.2, only_on=date(2024, 3, 10), seed=4)
    other = Window(date(2024, 3, 1), date(2024, 3, 9))

    def targeted() -> tuple[int, bytes]:
        response = _get(client)
        return response.status_code, response.content

    server.faults = plan
    alone = [targeted() for _ in range(12)]
    server.faults = plan
    interleaved = []
    for _ in range(12):
        assert _get(client, window=other).status_code == 200
        interleaved.append(targeted())
    assert interleaved == alone
    assert len({status for status, _ in alone}) >= 3


def test_only_on_bad_request_is_400_and_draws_nothing(client, server):
    server.faults = FaultPlan(server_error=1.0, only_on=date(2024, 3, 10))
    response = _get(client, latitude="")
    assert response.status_code == 400
    assert response.json()["reason"] == "Parameter 'latitude' is required"
    server.faults = FaultPlan(server_error=1.0)
    assert _get(client, latitude="").status_code in (500, 502, 503)
    assert server.faults_injected == {"server_error": 1}


def test_only_on_leaves_recent_nulls_alone(client, server):
    until = datetime(2024, 3, 10, 6, tzinfo=UTC)
    server.faults = FaultPlan(recent_null_hours=3, available_until=until, only_on=date(2024, 1, 1))
    hourly = _get(client, LOCATIONS[:1]).json()["hourly"]
    assert hourly["temperature_2m"][27:] == [None] * 21
    assert server.faults_injected == {"recent_nulls": 1}


@pytest.mark.parametrize(
    ("latitude", "longitude", "month", "mean_range"),
    [
        (52.52, 13.405, 12, (-4.0, 5.0)),  # Berlin in December
        (52.52, 13.405, 7, (13.0, 22.0)),  # Berlin in July
        (-33.92, 18.42, 1, (16.0, 24.0)),  # Cape Town in January
        (-33.92, 18.42, 7, (8.0, 15.0)),  # Cape Town in July
        (1.35, 103.8, 12, (23.0, 30.0)),  # Singapore in December
    ],
)
def test_generate_follows_a_plausible_climatology(latitude, longitude, month, mean_range):
    answer = generate(latitude, longitude, date(2026, month, 1), date(2026, month, 28), ("temperature_2m",))
    temperature = _column(answer, "temperature_2m")

    low, high = mean_range
    assert low <= temperature.mean() <= high
    # Days and nights of a month stay within a plausible spread of its mean.
    assert temperature.mean() - 15 <= temperature.min() and temperature.max() <= temperature.mean() + 15
