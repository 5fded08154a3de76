import pytest

from pipeline.locations import Location, LocationsFileError, parse_locations, read_locations
from pipeline.settings import DEFAULT_LOCATIONS_FILE

HEADER = "location_id,name,latitude,longitude\n"


def test_parse_locations_sorts_by_id_and_keeps_hostile_text_as_data():
    text = HEADER + "b;drop table x,\"Name, with 'quotes'\",1.5,2\nä-1,Zürich 🌦,47.37,8.54\n"
    assert parse_locations(text) == (
        Location("b;drop table x", "Name, with 'quotes'", 1.5, 2.0),
        Location("ä-1", "Zürich 🌦", 47.37, 8.54),
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a,A,1,2\na,B,3,4\n", "line 3: location_id 'a' already on line 2"),
        ("a,A,91,2\n", "line 2: latitude 91.0 is outside -90..90"),
        ("a,A,1,-181\n", "line 2: longitude -181.0 is outside -180..180"),
        ("a,A,nan,1\n", "latitude nan is outside"),
        ("a,A,north,1\n", "latitude 'north' is not a number"),
        (",A,1,2\n", "location_id must be 1-64 printable characters"),
        ("a,A,1\n", "expected 4 fields, got 3"),
        ("x" * 65 + ",A,1,2\n", "location_id must be"),
        ("", "no locations"),
    ],
)
def test_parse_locations_names_line_and_expectation(body, message):
    with pytest.raises(LocationsFileError, match="^test.csv") as info:
        parse_locations(HEADER + body, "test.csv")
    assert message in str(info.value)


def test_parse_locations_requires_the_header():
    with pytest.raises(LocationsFileError, match="first line must be location_id,name,latitude,longitude"):
        parse_locations("id,name,lat,lon\na,A,1,2\n")


def test_read_locations_reports_an_unreadable_file(tmp_path):
    with pytest.raises(LocationsFileError, match="cannot be read"):
        read_locations(tmp_path / "missing.csv")


def test_the_shipped_locations_file_is_valid():
    assert len(read_locations(DEFAULT_LOCATIONS_FILE)) == 10
