-- Write-audit-publish: dbt builds and tests a run's window in the `audit` schema; only a
-- window whose tests passed is copied into `marts`, which the pipeline (not dbt) owns.
create schema if not exists audit;
create schema if not exists marts;

-- The window dbt builds, read by the models at run time instead of passed as --vars:
-- changed vars make dbt re-parse the whole project, a changed row does not. One row,
-- written by the run holding the transform lock. The wide default makes a bare
-- `dbt build` on a fresh warehouse cover all of history.
create table if not exists ops.transform_window (
    singleton boolean primary key default true check (singleton),
    first_day date not null,
    end_day date not null,
    check (first_day < end_day)
);
insert into ops.transform_window (first_day, end_day) values ('1940-01-01', '2100-01-01')
on conflict (singleton) do nothing;

-- Same columns as audit.fct_daily_weather. A warehouse whose marts dbt built before keeps
-- its table and rows: they passed their tests when they were written.
create table if not exists marts.fct_daily_weather (
    location_id text,
    weather_date date,
    temperature_2m_min double precision,
    temperature_2m_max double precision,
    temperature_2m_mean double precision,
    dew_point_2m_mean double precision,
    relative_humidity_2m_mean double precision,
    precipitation_sum double precision,
    surface_pressure_mean double precision,
    cloud_cover_mean double precision,
    wind_speed_10m_mean double precision,
    wind_speed_10m_max double precision,
    hours_observed integer,
    hours_loaded integer
);
-- The grain, and the range scan that publishing a window deletes with.
create unique index if not exists fct_daily_weather_weather_date_location_id_key
    on marts.fct_daily_weather (weather_date, location_id);

create table if not exists marts.dim_locations (
    location_id text,
    location_name text,
    latitude double precision,
    longitude double precision,
    first_observed_date date,
    last_observed_date date
);
alter table marts.dim_locations
    add column if not exists is_active boolean,
    add column if not exists retired_at timestamptz;

-- Locations leave the file but not the warehouse: their history stays, retired.
alter table raw.locations add column if not exists retired_at timestamptz;

-- Which locations a day holds and how many of their hours have every value: a location
-- added later is missing for the days before it joined, and a day with nulls is
-- incomplete rather than landed.
alter table ops.load_ledger
    add column if not exists locations text[],
    add column if not exists complete_hours integer;
alter table ops.load_ledger drop constraint if exists load_ledger_status_check;
alter table ops.load_ledger
    add constraint load_ledger_status_check check (status in ('succeeded', 'incomplete', 'failed'));
