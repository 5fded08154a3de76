"""Loading into the real Postgres: binary COPY, nulls, one transaction per window."""

import threading
from datetime import UTC, date, datetime

import numpy as np
import psycopg
import pytest

from pipeline import load, warehouse
from pipeline.extract import VARIABLES, Observations
from pipeline.locations import Location
from pipeline.window import Window

WINDOW = Window(date(2024, 3, 9), date(2024, 3, 10))
LOCATIONS = (Location("a", "A", 1.0, 2.0), Location("é;'b", "B", 3.0, 4.0), Location("c", "C", 5.0, 6.0))


def observations(locations, offset=0.0, window=WINDOW):
    hours = len(window) * 24
    values = (
        np.arange(len(locations) * hours * len(VARIABLES), dtype=np.float64).reshape(
            len(locations), hours, len(VARIABLES)
        )
        / 10
        + offset
    )
    return Observations(window, tuple(loc.location_id for loc in locations), values)


@pytest.fixture
def conn(db):
    warehouse.migrate(db)
    load.replace_locations(db, LOCATIONS)
    return db


def test_replace_window_stores_every_value_and_null(conn):
    batch = observations(LOCATIONS)
    batch.values[1, 5, 2] = np.nan
    batch.values[2, 7, :] = np.nan

    loads = load.replace_window(conn, WINDOW, LOCATIONS, [batch], flow_run_id=None)

    assert [(d.day, d.row_count) for d in loads] == [(date(2024, 3, 9), 72), (date(2024, 3, 10), 72)]
    rows = conn.execute(
        f"select location_id, observed_at, {', '.join(VARIABLES)} from raw.hourly_weather order by 1, 2"
    ).fetchall()
    assert len(rows) == 3 * 48
    by_key = {(row[0], row[1]): row[2:] for row in rows}
    assert by_key[("a", datetime(2024, 3, 9, 3, tzinfo=UTC))] == tuple(batch.values[0, 3])
    assert by_key[("é;'b", datetime(2024, 3, 9, 5, tzinfo=UTC))][2] is None
    assert by_key[("é;'b", datetime(2024, 3, 9, 5, tzinfo=UTC))][1] == batch.values[1, 5, 1]
    assert by_key[("c", datetime(2024, 3, 9, 7, tzinfo=UTC))] == (None,) * len(VARIABLES)
    assert by_key[("c", datetime(2024, 3, 10, 23, tzinfo=UTC))] == tuple(batch.values[2, 47])


def test_day_checksums_do_not_depend_on_batching_or_window_shape(conn):
    whole = load.day_loads(WINDOW, [observations(LOCATIONS)])
    batched = load.day_loads(WINDOW, [observations(LOCATIONS[:2]), _slice(observations(LOCATIONS), 2)])
    one_day = Window(date(2024, 3, 10), date(2024, 3, 10))
    second_day = Observations(one_day, whole_ids(), observations(LOCATIONS).values[:, 24:, :])
    assert batched == whole
    assert load.day_loads(one_day, [second_day]) == whole[1:]


def whole_ids():
    return tuple(loc.location_id for loc in LOCATIONS)


def _slice(batch, start):
    return Observations(batch.window, batch.location_ids[start:], batch.values[start:])


def test_replacing_a_window_twice_leaves_one_copy(conn):
    load.replace_window(conn, WINDOW, LOCATIONS, [observations(LOCATIONS)], None)
    first = warehouse.day_checksums(conn, "raw")
    load.replace_window(conn, WINDOW, LOCATIONS, [observations(LOCATIONS)], None)
    assert warehouse.day_checksums(conn, "raw") == first
    assert conn.execute(
        "select count(*), count(distinct (location_id, observed_at)) from raw.hourly_weather"
    ).fetchone() == (144, 144)


def test_a_load_that_breaks_mid_copy_leaves_the_previous_state(conn, monkeypatch):
    load.replace_window(conn, WINDOW, LOCATIONS, [observations(LOCATIONS)], None)
    before = warehouse.day_checksums(conn, "raw")
    ledger = conn.execute("select * from ops.load_ledger order by day").fetchall()
    real_copy_buffer = load.copy_buffer
    calls = []

    def copy_buffer_then_crash(batch, *args):
        calls.append(batch)
        if len(calls) == 2:
            raise ConnectionError("connection lost mid-COPY")
        return real_copy_buffer(batch, *args)

    monkeypatch.setattr(load, "copy_buffer", copy_buffer_then_crash)
    batches = [observations(LOCATIONS[:2], offset=1), _slice(observations(LOCATIONS, offset=1), 2)]

    with pytest.raises(ConnectionError):
        load.replace_window(conn, WINDOW, LOCATIONS, batches, None)

    assert len(calls) == 2  # the first batch was already written inside the transaction
    assert warehouse.day_checksums(conn, "raw") == before
    assert conn.execute("select * from ops.load_ledger order by day").fetchall() == ledger


def test_replace_window_refuses_incomplete_observations(conn):
    with pytest.raises(ValueError, match="lack locations"):
        load.replace_window(conn, WINDOW, LOCATIONS, [observations(LOCATIONS[:2])], None)
    assert conn.execute("select count(*) from raw.hourly_weather").fetchone()[0] == 0


def test_migrate_is_idempotent(conn):
    assert warehouse.migrate(conn) == []


def test_an_applied_migration_that_was_edited_is_refused_and_nothing_more_is_applied(db, tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_first.sql").write_text("create table ops.first (id int);")
    assert warehouse.migrate(db, folder) == ["001_first"]
    # A database migrated before checksums were kept records them the first time it sees them.
    db.execute("update ops.schema_migrations set checksum = null")
    assert warehouse.migrate(db, folder) == []
    assert db.execute("select checksum from ops.schema_migrations").fetchone()[0] is not None

    (folder / "001_first.sql").write_text("create table ops.first (id bigint);")
    (folder / "002_second.sql").write_text("create table ops.second (id int);")
    with pytest.raises(warehouse.WarehouseError, match="migration 001_first.sql was edited after this database"):
        warehouse.migrate(db, folder)
    assert not warehouse.table_exists(db, "ops.second")


def test_migrations_sharing_a_number_are_refused_before_anything_is_applied(db, tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_first.sql").write_text("create table ops.first (id int);")
    (folder / "002_second.sql").write_text("create table ops.second (id int);")
    (folder / "002_third.sql").write_text("create table ops.third (id int);")

    with pytest.raises(warehouse.WarehouseError, match="002_second.sql, 002_third.sql share the number 002"):
        warehouse.migrate(db, folder)

    assert not warehouse.table_exists(db, "ops.first")


def test_the_migrations_give_raw_hourly_weather_a_nullable_column_per_variable(conn):
    columns = conn.execute(
        "select column_name, data_type, is_nullable from information_schema.columns"
        " where table_schema = 'raw' and table_name = 'hourly_weather'"
    ).fetchall()
    types = {name: (data_type, nullable) for name, data_type, nullable in columns}
    assert set(types) == {"location_id", "observed_at", *VARIABLES, "_loaded_at"}
    assert all(types[variable] == ("double precision", "YES") for variable in VARIABLES)


def row_versions(conn) -> dict:
    """Each row's transaction id: it changes when a row is rewritten, even with the same values."""
    rows = conn.execute("select location_id, observed_at, xmin::text from raw.hourly_weather").fetchall()
    return {(location_id, observed_at): xmin for location_id, observed_at, xmin in rows}


def test_an_identical_reload_rewrites_only_the_days_that_changed(conn):
    load.replace_window(conn, WINDOW, LOCATIONS, [observations(LOCATIONS)], None)
    before = row_versions(conn)
    loaded_at = conn.execute("select day, loaded_at from ops.load_ledger order by day").fetchall()
    changed = observations(LOCATIONS)
    changed.values[0, 30, 0] += 1  # one value on the second day

    loads = load.replace_window(conn, WINDOW, LOCATIONS, [changed], None)

    after = row_versions(conn)
    first_day = {key for key in before if key[1] < datetime(2024, 3, 10, tzinfo=UTC)}
    assert {key: after[key] for key in first_day} == {key: before[key] for key in first_day}
    assert all(after[key] != before[key] for key in before.keys() - first_day)
    assert [d.checksum for d in loads] == [d.checksum for d in load.day_loads(WINDOW, [changed])]
    ledger = conn.execute("select day, loaded_at from ops.load_ledger order by day").fetchall()
    assert ledger[0] == loaded_at[0] and ledger[1][1] > loaded_at[1][1]
    assert conn.execute("select count(*) from raw.hourly_weather").fetchone()[0] == 144


def test_a_reload_rewrites_a_day_whose_rows_no_longer_match_the_ledger(conn):
    load.replace_window(conn, WINDOW, LOCATIONS, [observations(LOCATIONS)], None)
    before = warehouse.day_checksums(conn, "raw")
    conn.execute("delete from raw.hourly_weather where location_id = 'a' and observed_at < '2024-03-10'")

    load.replace_window(conn, WINDOW, LOCATIONS, [observations(LOCATIONS)], None)

    assert warehouse.day_checksums(conn, "raw") == before


def test_force_rewrites_every_day(conn):
    load.replace_window(conn, WINDOW, LOCATIONS, [observations(LOCATIONS)], None)
    before = row_versions(conn)

    load.replace_window(conn, WINDOW, LOCATIONS, [observations(LOCATIONS)], None, force=True)

    after = row_versions(conn)
    assert after.keys() == before.keys() and all(after[key] != before[key] for key in before)


def test_session_lock_waits_for_its_holder_and_is_freed_when_the_holder_dies(pipeline_env):
    waited, acquired = threading.Event(), threading.Event()

    def second_holder() -> None:
        with (
            psycopg.connect(pipeline_env, autocommit=True) as conn,
            warehouse.session_lock(conn, "weather test lock", on_wait=waited.set),
        ):
            acquired.set()

    holder = psycopg.connect(pipeline_env, autocommit=True)
    lock = warehouse.session_lock(holder, "weather test lock")
    lock.__enter__()
    thread = threading.Thread(target=second_holder)
    thread.start()
    held_off = not acquired.wait(1.0)
    holder.close()  # as when the holding process is killed: no unlock, the session just ends
    lock.__exit__(None, None, None)
    thread.join(10)

    assert waited.is_set()
    assert held_off
    assert acquired.is_set()


def test_session_lock_gives_up_after_its_timeout_naming_the_lock_and_its_holder(pipeline_env):
    with (
        psycopg.connect(pipeline_env, autocommit=True, application_name="stuck session") as holder,
        warehouse.session_lock(holder, "weather test lock"),
        psycopg.connect(pipeline_env, autocommit=True) as conn,
    ):
        with pytest.raises(warehouse.LockWaitExpired) as expired:
            with warehouse.session_lock(conn, "weather test lock", timeout=0.2):
                pass
        # The waiting session is usable afterwards, without the lock and with no lock timeout left over.
        held = conn.execute("select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()")
        assert held.fetchone()[0] == 0
        assert conn.execute("show lock_timeout").fetchone()[0] == "0"

    message = str(expired.value)
    assert message.startswith("waited 0.2 s for the lock 'weather test lock', held by Postgres pid ")
    assert "stuck session" in message


def test_a_load_replaces_only_the_locations_it_fetched_and_the_ledger_says_which_a_day_holds(conn):
    load.replace_window(conn, WINDOW, LOCATIONS, [observations(LOCATIONS)], None)
    before = row_versions(conn)
    first = LOCATIONS[:1]

    load.replace_window(conn, WINDOW, first, [observations(first, offset=5)], None)

    after = row_versions(conn)
    assert {key: after[key] for key in before if key[0] != "a"} == {k: v for k, v in before.items() if k[0] != "a"}
    assert all(after[key] != before[key] for key in before if key[0] == "a")
    assert conn.execute("select min(temperature_2m) from raw.hourly_weather where location_id = 'a'").fetchone() == (5,)
    ledger = conn.execute("select status, row_count, complete_hours, locations from ops.load_ledger order by day")
    assert [(s, n, c, sorted(ids)) for s, n, c, ids in ledger] == [("succeeded", 72, 72, ["a", "c", "é;'b"])] * 2


def test_a_day_with_a_null_value_is_incomplete_in_the_ledger(conn):
    batch = observations(LOCATIONS)
    batch.values[1, 30, 2] = np.nan  # one variable of one hour, on the second day

    load.replace_window(conn, WINDOW, LOCATIONS, [batch], None)

    ledger = conn.execute("select day, status, row_count, complete_hours from ops.load_ledger order by day").fetchall()
    assert ledger == [(date(2024, 3, 9), "succeeded", 72, 72), (date(2024, 3, 10), "incomplete", 72, 71)]


def test_locations_leaving_the_file_are_retired_and_come_back_active(conn):
    load.replace_locations(conn, LOCATIONS[:2])
    retired = "select location_id from raw.locations where retired_at is not null"
    assert conn.execute(retired).fetchall() == [("c",)]

    load.replace_locations(conn, LOCATIONS)

    assert conn.execute(retired).fetchall() == []
    assert conn.execute("select count(*) from raw.locations").fetchone()[0] == 3
