"""Load observations into Postgres: one transaction replaces a window of days."""

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache

import numpy as np
import psycopg
from psycopg import sql

from pipeline import ledger
from pipeline.extract import VARIABLES, Observations
from pipeline.locations import Location
from pipeline.warehouse import hourly_query, query
from pipeline.window import Window, consecutive_runs

HOURS_PER_DAY = 24

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_FIELDS = 2 + len(VARIABLES)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECONDS_PER_HOUR = 3_600_000_000
HOURLY_TABLE = sql.Identifier("raw", "hourly_weather")


@dataclass(frozen=True)
class DayLoad:
    """What one load wrote for one day."""

    day: date
    row_count: int
    checksum: str


def copy_statement(table: sql.Identifier = HOURLY_TABLE) -> sql.Composed:
    """The binary COPY into `table` whose rows `copy_buffer` writes: the key, then `VARIABLES` in order."""
    return hourly_query("copy_hourly_weather", table=table)


def copy_buffer(batch: Observations, hours: np.ndarray | None = None) -> bytes:
    """The rows of one batch as a binary COPY body (without header and trailer).

    `hours` (a boolean mask over the window's hours) selects which rows to write; all by
    default. Rows without nulls are laid out by numpy in one pass; the few rows with a
    null (recent hours the archive has not filled yet) are packed one by one.
    """
    count = batch.values.shape[1]
    selected = np.ones(count, dtype=bool) if hours is None else hours
    first_hour = int((batch.window.start - _PG_EPOCH).total_seconds()) * 1_000_000
    timestamps = first_hour + np.arange(count, dtype=np.int64) * _MICROSECONDS_PER_HOUR
    parts = []
    for location_id, values in zip(batch.location_ids, batch.values, strict=True):
        key = location_id.encode()
        has_null = np.isnan(values).any(axis=1)
        complete = selected & ~has_null
        rows = np.empty(int(complete.sum()), dtype=_row_dtype(len(key)))
        rows["fields"] = _FIELDS
        rows["key_len"] = len(key)
        rows["key"] = key
        rows["ts_len"] = 8
        rows["ts"] = timestamps[complete]
        for position, variable in enumerate(VARIABLES):
            rows[f"{variable}_len"] = 8
            rows[variable] = values[complete, position]
        parts.append(rows.tobytes())
        for hour in np.flatnonzero(selected & has_null):
            parts.append(_pack_row(key, int(timestamps[hour]), values[hour]))
    return b"".join(parts)


@cache
def _row_dtype(key_length: int) -> np.dtype:
    fields = [("fields", ">i2"), ("key_len", ">i4"), ("key", f"S{key_length}"), ("ts_len", ">i4"), ("ts", ">i8")]
    for variable in VARIABLES:
        fields += [(f"{variable}_len", ">i4"), (variable, ">f8")]
    return np.dtype(fields)  # packed: no alignment padding, exactly the COPY layout


def _pack_row(key: bytes, timestamp: int, values: np.ndarray) -> bytes:
    parts = [struct.pack(f">hi{len(key)}siq", _FIELDS, len(key), key, 8, timestamp)]
    for value in values.tolist():
        parts.append(struct.pack(">i", -1) if value != value else struct.pack(">id", 8, value))
    return b"".join(parts)


def day_loads(window: Window, batches: Sequence[Observations]) -> list[DayLoad]:
    """Per-day row counts and content checksums, independent of how locations were batched.

    The checksum covers the location ids and every value (NaN for null) in location and
    hour order, so the same data gives the same checksum in a daily run and a backfill.
    """
    ids = b"\0".join(location_id.encode() for batch in batches for location_id in batch.location_ids)
    loads = []
    for index, day in enumerate(window.days):
        digest = hashlib.sha256(ids + b"\0\0")
        hours = slice(index * HOURS_PER_DAY, (index + 1) * HOURS_PER_DAY)
        rows = 0
        for batch in batches:
            day_values = np.ascontiguousarray(batch.values[:, hours, :], dtype="<f8")
            digest.update(day_values.tobytes())
            rows += day_values.shape[0] * day_values.shape[1]
        loads.append(DayLoad(day, rows, digest.hexdigest()))
    return loads


def check_complete(window: Window, locations: Sequence[Location], batches: Sequence[Observations]) -> None:
    """Refuse to replace a window with anything but every location for every hour of it."""
    expected = tuple(location.location_id for location in locations)
    got = tuple(location_id for batch in batches for location_id in batch.location_ids)
    if got != expected:
        missing = sorted(set(expected) - set(got))
        raise ValueError(f"observations for window {window} lack locations {missing[:5]} (or are out of order)")
    for batch in batches:
        if batch.window != window:
            raise ValueError(f"observations for window {batch.window} given to a load of window {window}")


def replace_window(
    conn: psycopg.Connection,
    window: Window,
    locations: Sequence[Location],
    batches: Sequence[Observations],
    flow_run_id: str | None,
    force: bool = False,
) -> list[DayLoad]:
    """Replace the rows of (`window` × `locations`) and record each day in the ledger, in one transaction.

    Other locations' rows for those days stay: a location removed from the file keeps its
    history, and a backfill of one new location leaves the others alone. A day whose new
    content has the checksum and row count the table already holds for those locations is
    left as it is (a daily run's lookback days usually are): rewriting identical rows
    costs a delete and a re-insert against the dead tuples' index entries for nothing.
    `force` rewrites every day. A failure anywhere rolls back to the previous state.
    """
    check_complete(window, locations, batches)
    loads = day_loads(window, batches)
    with conn.transaction():
        # Only this transaction's commit is deferred; a crash loses it whole, never part of it.
        conn.execute("set local synchronous_commit = off")
        conn.execute(query("lock_days"), {"days": window.days})
        location_ids = [location.location_id for location in locations]
        stored = {} if force else ledger.stored_days(conn, window, location_ids)
        changed = [load.day for load in loads if stored.get(load.day) != (load.row_count, load.checksum)]
        for run in consecutive_runs(changed):
            conn.execute(query("delete_window"), {"start": run.start, "end": run.end, "locations": location_ids})
        if changed:
            hours = np.repeat(np.isin(window.days, changed), HOURS_PER_DAY)
            with conn.cursor() as cursor, cursor.copy(copy_statement()) as copy:
                copy.write(_COPY_HEADER)
                for batch in batches:
                    copy.write(copy_buffer(batch, hours))
                copy.write(_COPY_TRAILER)
        ledger.record_success(
            conn, window, [load.day for load in loads], [load.checksum for load in loads], flow_run_id
        )
    return loads


def replace_locations(conn: psycopg.Connection, locations: Sequence[Location]) -> int:
    """Merge the locations file into `raw.locations` in one transaction; those it no longer lists are retired."""
    with conn.transaction():
        conn.execute(query("replace_locations"))
        with conn.cursor() as cursor, cursor.copy(query("copy_locations")) as copy:
            for location in locations:
                copy.write_row((location.location_id, location.name, location.latitude, location.longitude))
        conn.execute(query("merge_locations"))
    return len(locations)
