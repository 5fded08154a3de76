"""The local archive server over real HTTP: protocol, errors and injected faults."""

from datetime import UTC, datetime

import httpx
import orjson
import pytest

from pipeline.source_server import (
    DAILY_LIMIT_REASON,
    MINUTELY_LIMIT_REASON,
    VARIABLES,
    FaultPlan,
    SourceServer,
    generate,
)

PARAMS = {
    "latitude": "52.52",
    "longitude": "13.41",
    "start_date": "2024-03-09",
    "end_date": "2024-03-10",
    "hourly": ",".join(VARIABLES),
    "timezone": "UTC",
}


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    """These tests need no Prefect server; this stands in for the session-wide one."""
    yield


def _archive(client: httpx.Client, **overrides: str) -> httpx.Response:
    return client.get("/v1/archive", params=PARAMS | overrides)


def test_archive_one_location_returns_object(client):
    response = _archive(client)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert (answer["latitude"], answer["longitude"]) == (52.5, 13.5)
    assert answer["timezone"] == "GMT" and answer["utc_offset_seconds"] == 0
    assert answer["hourly_units"]["temperature_2m"] == "°C"
    assert list(answer["hourly"]) == ["time", *VARIABLES]
    assert answer["hourly"]["time"][0] == "2024-03-09T00:00"
    assert answer["hourly"]["time"][-1] == "2024-03-10T23:00"
    assert {len(values) for values in answer["hourly"].values()} == {48}


def test_archive_several_locations_return_array_in_request_order(client):
    latitudes, longitudes = (64.1466, -33.9249, 41.9742), (-21.9426, 18.4241, -87.9073)
    response = _archive(client, latitude=",".join(map(str, latitudes)), longitude=",".join(map(str, longitudes)))
    answers = response.json()
    assert isinstance(answers, list) and len(answers) == 3
    for answer, latitude, longitude in zip(answers, latitudes, longitudes, strict=True):
        expected = generate(latitude, longitude, "2024-03-09", "2024-03-10", VARIABLES)
        assert (answer["latitude"], answer["longitude"]) == (expected["latitude"], expected["longitude"])
        assert answer["hourly"]["temperature_2m"] == expected["hourly"]["temperature_2m"].tolist()


def test_archive_same_request_same_body(client):
    assert _archive(client).content == _archive(client).content


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"latitude": ""}, "Parameter 'latitude' is required"),
        ({"longitude": "east"}, "Parameter 'longitude' must be a number"),
        ({"latitude": "91"}, "Latitude must be in range of -90 to 90°. Given: 91.0."),
        ({"longitude": "-180.5"}, "Longitude must be in range of -180 to 180°. Given: -180.5."),
        ({"latitude": "52.52,48.85"}, "Parameter 'latitude' and 'longitude' must have the same number of elements"),
        ({"start_date": ""}, "Parameters 'start_date' and 'end_date' are required"),
        ({"start_date": "2024-02-30"}, "Invalid date format. Make sure to use 'YYYY-MM-DD'"),
        ({"end_date": "2024-13-01"}, "Invalid date format. Make sure to use 'YYYY-MM-DD'"),
        ({"end_date": "20240310"}, "Invalid date format. Make sure to use 'YYYY-MM-DD'"),
        ({"end_date": "2024-03-08"}, "End-date must be larger or equals than start-date"),
        ({"start_date": "1939-12-31"}, "Parameter 'start_date' is out of allowed range from 1940-01-01 to"),
        (
            {"hourly": "temperature_2m,foo"},
            "Cannot initialize WeatherVariable from invalid String value foo for key hourly",
        ),
        ({"timezone": "Europe/Berlin"}, "Invalid timezone 'Europe/Berlin'"),
    ],
)
def test_archive_bad_request_reasons(client, overrides, reason):
    response = _archive(client, **overrides)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] is True
    assert body["reason"].startswith(reason)


def test_archive_missing_latitude_is_bad_request(client):
    params = {key: value for key, value in PARAMS.items() if key != "latitude"}
    response = client.get("/v1/archive", params=params)
    assert response.status_code == 400
    assert response.json()["reason"] == "Parameter 'latitude' is required"


def test_unknown_path_returns_404_json(client, server):
    response = client.get("/v1/forecast", params=PARAMS)
    assert response.status_code == 404
    assert response.json()["error"] is True
    assert server.requests == 0


def test_fault_server_error_returns_5xx(client, server):
    server.faults = FaultPlan(server_error=1.0, seed=3)
    statuses = {_archive(client).status_code for _ in range(12)}
    assert statuses <= {500, 502, 503} and len(statuses) > 1
    assert server.faults_injected == {"server_error": 12}
    assert server.requests == 12


@pytest.mark.parametrize(
    ("kind", "reason"), [("rate_limited", MINUTELY_LIMIT_REASON), ("daily_limit", DAILY_LIMIT_REASON)]
)
def test_fault_limit_returns_429_with_reason(client, server, kind, reason):
    server.faults = FaultPlan(**{kind: 1.0})
    response = _archive(client)
    assert response.status_code == 429
    assert response.json() == {"error": True, "reason": reason}
    assert "retry-after" not in response.headers
    assert server.faults_injected == {kind: 1}


def test_fault_slow_outlasts_client_timeout(server):
    server.faults = FaultPlan(slow=1.0, slow_seconds=1.0)
    with httpx.Client(base_url=server.url, timeout=0.2) as impatient, pytest.raises(httpx.ReadTimeout):
        _archive(impatient)
    assert server.faults_injected == {"slow": 1}


def test_fault_slow_answers_after_delay(client, server):
    server.faults = FaultPlan(slow=1.0, slow_seconds=0.05)
    response = _archive(client)
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.05


def test_fault_malformed_returns_invalid_json(client, server):
    server.faults = FaultPlan(malformed=1.0)
    response = _archive(client)
    assert response.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)
    assert server.faults_injected == {"malformed": 1}


def test_fault_unequal_shortens_one_array(client, server):
    server.faults = FaultPlan(unequal=1.0)
    hourly = _archive(client).json()["hourly"]
    lengths = {name: len(values) for name, values in hourly.items()}
    assert sorted(lengths.values()) == [47] + [48] * len(VARIABLES)
    assert server.faults_injected == {"unequal": 1}


def test_fault_reset_drops_connection(client, server):
    server.faults = FaultPlan(reset=1.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        _archive(client)
    server.faults = FaultPlan()
    assert _archive(client).status_code == 200
    assert server.faults_injected == {"reset": 1}


def test_recent_null_hours_null_the_tail(client, server):
    until = datetime(2024, 3, 10, 6, tzinfo=UTC)
    server.faults = FaultPlan(recent_null_hours=3, available_until=until)
    hourly = _archive(client).json()["hourly"]
    for name in VARIABLES:
        assert None not in hourly[name][:27]
        assert hourly[name][27:] == [None] * 21
    assert server.faults_injected == {"recent_nulls": 1}


def _outcomes(client: httpx.Client, count: int) -> list[object]:
    outcomes = []
    for _ in range(count):
        try:
            response = _archive(client, end_date="2024-03-09")
        except httpx.TransportError as error:
            outcomes.append(type(error).__name__)
        else:
            outcomes.append((response.status_code, len(response.content)))
    return outcomes


def test_faults_repeat_with_same_seed(client, server):
    plan = FaultPlan.parse(
        "server_error=0.2,rate_limited=0.1,daily_limit=0.05,malformed=0.1,unequal=0.1,reset=0.1,seed=7"
    )
    server.faults = plan
    first = _outcomes(client, 40)
    server.faults = plan
    second = _outcomes(client, 40)
    assert first == second
    assert len(set(first)) >= 5
    server.faults = FaultPlan.parse("server_error=0.2,rate_limited=0.1,malformed=0.1,reset=0.1,seed=8")
    assert _outcomes(client, 40) != first


def test_reset_counters_zeroes_counts(client, server):
    server.faults = FaultPlan(rate_limited=1.0)
    _archive(client)
    assert (server.requests, server.faults_injected) == (1, {"rate_limited": 1})
    server.reset_counters()
    assert (server.requests, server.faults_injected) == (0, {})


def test_stop_closes_idle_keep_alive_connections():
    with SourceServer() as server, httpx.Client(base_url=server.url, timeout=2) as client:
        assert _archive(client).status_code == 200
        server.stop()
        with pytest.raises(httpx.TransportError):
            _archive(client)
