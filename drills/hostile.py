"""The hostile-input scenario: odd but valid names are stored exactly, invalid input is refused by name."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from drills.cluster import Warehouse
from drills.report import Outcome
from drills.runs import Drill
from pipeline.locations import parse_locations

HOURS = 24

ODD_LOCATIONS = (
    "location_id,name,latitude,longitude\n"
    'o\'hare;--,"Chicago, ""O\'Hare""; drop table raw.locations; --",41.9742,-87.9073\n'
    '"x""); delete from raw.hourly_weather; --",Quote injector,10,10\n'
    "zürich-ß,Zürich ßtraße 東京 🌧,47.3769,8.5417\n"
    f"{'l' * 64},{'Ñ' * 200},-89.99,179.99\n"
    "back\\slash,Tab\tand back\\slash,0,0\n"
)


def hostile(drill: Drill, outcome: Outcome) -> None:
    """Odd but valid names are stored exactly; invalid input fails clearly and changes nothing."""
    db = drill.cluster.database("drill_scenario")
    day = drill.size.range.first
    odd = drill.work / "odd-locations.csv"
    odd.write_text(ODD_LOCATIONS, encoding="utf-8")
    problems = []
    run = drill.run(
        db, ["run", "--date", day.isoformat()], PIPELINE_LOCATIONS_FILE=str(odd), PIPELINE_LOOKBACK_DAYS="0"
    )
    outcome.runs += 1
    if not run.ok:
        problems.append(f"odd names: {run.reason}")
    else:
        problems += check_stored_locations(db, ODD_LOCATIONS, day)
    before = db.snapshot()
    today = datetime.now(UTC).date()
    for args, env, expect in hostile_cases(drill.work, today):
        run = drill.run(db, args, PIPELINE_LOOKBACK_DAYS="0", **env)
        outcome.runs += 1
        outcome.faults += 1
        if run.ok:
            problems.append(f"{' '.join(args)}: accepted")
        elif expect not in run.output or "Traceback" in run.output:
            problems.append(f"{' '.join(args)}: unclear: {run.reason}")
    if db.snapshot() != before:
        problems.append("a rejected input changed the warehouse")
    # Nothing here is compared with the reference: the problems alone decide.
    outcome.identical = not problems
    outcome.note = "; ".join(problems)[:300] or "odd names stored exactly; every bad input rejected by name"


def hostile_cases(work: Path, today: date) -> Iterator[tuple[list[str], dict[str, str], str]]:
    """(arguments, environment, what the error must name) for input that must be refused."""
    for value in ("2024-02-30", "2024-13-01", "", "yesterday", "2024-3-1"):
        yield ["run", "--date", value], {}, f"'{value}'"
    yield ["run", "--date", (today + timedelta(days=1)).isoformat()], {}, "is not in the past"
    yield ["backfill", "--start", "2024-03-05", "--end", "2024-03-01"], {}, "before --start"
    yield ["backfill", "--start", "1940-01-01", "--end", (today - timedelta(days=1)).isoformat()], {}, "--yes"
    files = {
        "duplicate ids": ("a,A,1,1\nb,B,2,2\na,Again,3,3\n", "already on line 2"),
        "latitude out of range": ("a,A,91,1\n", "latitude 91.0 is outside"),
        "longitude not a number": ("a,A,1,east\n", "'east' is not a number"),
        "name too long": (f"a,{'n' * 201},1,1\n", "name must be 1-200 characters"),
        "empty id": (",A,1,1\n", "location_id must be"),
        "wrong header": None,
    }
    for label, spec in files.items():
        path = work / f"bad-{label.replace(' ', '-')}.csv"
        if spec is None:
            path.write_text("id,name,lat,lon\na,A,1,1\n", encoding="utf-8")
            expect = "the first line must be"
        else:
            body, expect = spec
            path.write_text("location_id,name,latitude,longitude\n" + body, encoding="utf-8")
        yield ["run", "--date", "2024-03-01"], {"PIPELINE_LOCATIONS_FILE": str(path)}, expect


def check_stored_locations(db: Warehouse, text: str, day: date) -> list[str]:
    """What differs between the locations in `text` and what `day`'s run stored for them."""
    wanted = sorted((loc.location_id, loc.name, loc.latitude, loc.longitude) for loc in parse_locations(text))
    with psycopg.connect(db.dsn) as conn:
        raw = conn.execute("select location_id, name, latitude, longitude from raw.locations order by 1").fetchall()
        mart = conn.execute(
            "select location_id, location_name, latitude, longitude from marts.dim_locations order by 1"
        ).fetchall()
        hourly = dict(conn.execute("select location_id, count(*) from raw.hourly_weather group by 1").fetchall())
        daily = dict(conn.execute("select location_id, count(*) from marts.fct_daily_weather group by 1").fetchall())
    problems = []
    if sorted(raw) != wanted:
        problems.append("raw.locations differs from the file")
    if sorted(mart) != wanted:
        problems.append("marts.dim_locations differs from the file")
    ids = [row[0] for row in wanted]
    if hourly != dict.fromkeys(ids, HOURS) or daily != dict.fromkeys(ids, 1):
        problems.append(f"hourly/daily rows per location wrong for {day}")
    return problems
