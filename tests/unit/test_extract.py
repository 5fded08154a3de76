from datetime import date

import numpy as np
import orjson
import pytest

from pipeline.extract import (
    VARIABLES,
    PermanentSourceError,
    TransientSourceError,
    batch_locations,
    check_status,
    expected_times,
    parse_payload,
    request_params,
)
from pipeline.locations import Location
from pipeline.window import Window

WINDOW = Window(date(2024, 3, 9), date(2024, 3, 10))
LOCATIONS = (Location("a", "A", 52.37, 4.9), Location("b", "B", -33.9, 18.4))


def answer(hours=48, **overrides):
    hourly = {"time": expected_times(WINDOW)[:hours]} | {v: [float(i) for i in range(hours)] for v in VARIABLES}
    hourly |= overrides
    # Grid-cell centres, not the coordinates asked for: matching must go by position.
    return {"latitude": 52.25, "longitude": 5.0, "elevation": 3.0, "hourly": hourly}


def test_expected_times_are_every_hour_of_the_window_in_api_format():
    times = expected_times(WINDOW)
    assert len(times) == 48
    assert times[0] == "2024-03-09T00:00"
    assert times[-1] == "2024-03-10T23:00"


def test_parse_payload_matches_answers_to_locations_by_position():
    first, second = answer(), answer()
    second["hourly"]["temperature_2m"] = [None] + [99.0] * 47
    observations = parse_payload(orjson.dumps([first, second]), LOCATIONS, WINDOW)
    assert observations.location_ids == ("a", "b")
    assert observations.values.shape == (2, 48, len(VARIABLES))
    assert observations.values[0, 5, 0] == 5.0
    assert np.isnan(observations.values[1, 0, 0])
    assert observations.values[1, 1, 0] == 99.0
    assert observations.row_count == 96


def test_parse_payload_accepts_a_single_object_for_one_location():
    observations = parse_payload(orjson.dumps(answer()), LOCATIONS[:1], WINDOW)
    assert observations.location_ids == ("a",)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'[{"latitude": 1', "invalid JSON"),
        (orjson.dumps([answer()]), "answered 1 locations for window 2024-03-09..2024-03-10, expected 2"),
        (orjson.dumps([answer(), {"latitude": 1}]), "location 'b', window 2024-03-09..2024-03-10 has no 'hourly'"),
        (orjson.dumps([answer(), answer(hours=47)]), "location 'b'"),
        (orjson.dumps([answer(temperature_2m=[1.0] * 47), answer()]), "temperature_2m has 47 values, expected 48"),
        (orjson.dumps([answer(precipitation=["1.5"] * 48), answer()]), "precipitation has non-numeric values"),
        (orjson.dumps([answer(cloud_cover=[True] * 48), answer()]), "cloud_cover has non-numeric values"),
    ],
)
def test_parse_payload_rejects_malformed_answers_naming_location_and_window(payload, message):
    with pytest.raises(PermanentSourceError) as info:
        parse_payload(payload, LOCATIONS, WINDOW)
    assert message in str(info.value)


def test_parse_payload_names_the_first_wrong_hour():
    times = expected_times(WINDOW)
    times[30] = "2024-03-10T07:00"
    with pytest.raises(
        PermanentSourceError, match=r"hourly.time\[30\] is '2024-03-10T07:00', expected '2024-03-10T06:00'"
    ):
        parse_payload(orjson.dumps([answer(time=times), answer()]), LOCATIONS, WINDOW)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_check_status_treats_5xx_as_transient(status):
    with pytest.raises(TransientSourceError, match=f"HTTP {status}"):
        check_status(status, b"", "window x")


def test_check_status_treats_minutely_429_as_transient_and_daily_429_as_permanent():
    with pytest.raises(TransientSourceError):
        check_status(429, b'{"error": true, "reason": "Minutely API request limit exceeded."}', "w")
    with pytest.raises(PermanentSourceError, match="Daily API request limit exceeded"):
        check_status(429, b'{"error": true, "reason": "Daily API request limit exceeded."}', "w")


def test_check_status_quotes_the_reason_of_a_400():
    with pytest.raises(PermanentSourceError, match="HTTP 400 for w: Invalid date format"):
        check_status(400, b'{"error": true, "reason": "Invalid date format"}', "w")


def test_request_params_join_locations_in_order():
    params = request_params(LOCATIONS, WINDOW)
    assert params["latitude"] == "52.37,-33.9"
    assert params["longitude"] == "4.9,18.4"
    assert (params["start_date"], params["end_date"], params["timezone"]) == ("2024-03-09", "2024-03-10", "UTC")
    assert params["hourly"].split(",") == list(VARIABLES)


def test_batch_locations_keeps_order_and_size():
    batches = batch_locations(tuple(Location(str(i), "x", 0, 0) for i in range(5)), 2)
    assert [[loc.location_id for loc in batch] for batch in batches] == [["0", "1"], ["2", "3"], ["4"]]
