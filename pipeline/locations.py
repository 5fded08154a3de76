"""The locations file: which points the pipeline observes."""

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HEADER = ["location_id", "name", "latitude", "longitude"]
MAX_ID_LENGTH = 64
MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class Location:
    location_id: str
    name: str
    latitude: float
    longitude: float


class LocationsFileError(ValueError):
    """The locations file cannot be used as it is."""


def read_locations(path: Path) -> tuple[Location, ...]:
    """Read and validate a `location_id,name,latitude,longitude` CSV, sorted by id."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LocationsFileError(f"locations file {path}: cannot be read ({exc})") from None
    return parse_locations(text, str(path))


def read_chosen_locations(path: Path, location_ids: Sequence[str]) -> tuple[Location, ...]:
    """The locations `location_ids` name, in that order, from the file at `path`; one the file lacks is an error."""
    by_id = {location.location_id: location for location in read_locations(path)}
    if unknown := [location_id for location_id in location_ids if location_id not in by_id]:
        raise ValueError(f"locations {', '.join(unknown)} are not in this worker's locations file {path}")
    return tuple(by_id[location_id] for location_id in location_ids)


def parse_locations(text: str, source: str = "locations file") -> tuple[Location, ...]:
    """Validate CSV text; errors name the file, the line and what was expected."""
    rows = list(csv.reader(text.splitlines()))
    if not rows or [c.strip() for c in rows[0]] != HEADER:
        raise LocationsFileError(f"{source}: the first line must be {','.join(HEADER)}")
    seen: dict[str, int] = {}
    locations = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        where = f"{source} line {line_no}"
        if len(row) != len(HEADER):
            raise LocationsFileError(f"{where}: expected {len(HEADER)} fields, got {len(row)}")
        location_id, name = row[0].strip(), row[1].strip()
        if not location_id or len(location_id) > MAX_ID_LENGTH or not location_id.isprintable():
            raise LocationsFileError(
                f"{where}: location_id must be 1-{MAX_ID_LENGTH} printable characters, got {location_id!r}"
            )
        if not name or len(name) > MAX_NAME_LENGTH:
            raise LocationsFileError(f"{where}: name must be 1-{MAX_NAME_LENGTH} characters")
        if location_id in seen:
            raise LocationsFileError(f"{where}: location_id {location_id!r} already on line {seen[location_id]}")
        seen[location_id] = line_no
        latitude = _coordinate(row[2], -90, 90, "latitude", where)
        longitude = _coordinate(row[3], -180, 180, "longitude", where)
        locations.append(Location(location_id, name, latitude, longitude))
    if not locations:
        raise LocationsFileError(f"{source}: no locations")
    return tuple(sorted(locations, key=lambda loc: loc.location_id))


def _coordinate(raw: str, low: float, high: float, name: str, where: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise LocationsFileError(f"{where}: {name} {raw!r} is not a number") from None
    if not low <= value <= high:  # also rejects nan
        raise LocationsFileError(f"{where}: {name} {value} is outside {low}..{high}")
    return value
