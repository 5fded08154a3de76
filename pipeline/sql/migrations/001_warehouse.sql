-- Raw landing tables, close to the source API, and the load ledger.
create schema if not exists raw;
create schema if not exists ops;

create table if not exists raw.hourly_weather (
    location_id text not null,
    observed_at timestamptz not null,
    temperature_2m double precision,
    relative_humidity_2m double precision,
    dew_point_2m double precision,
    precipitation double precision,
    surface_pressure double precision,
    cloud_cover double precision,
    wind_speed_10m double precision,
    wind_direction_10m double precision,
    _loaded_at timestamptz not null default now(),
    constraint hourly_weather_pkey primary key (location_id, observed_at)
);

-- Every load deletes and dbt reads a time window across all locations: the key's
-- leading column cannot serve that, this index can.
create index if not exists hourly_weather_observed_at_idx on raw.hourly_weather (observed_at);

create table if not exists raw.locations (
    location_id text primary key,
    name text not null,
    latitude double precision not null,
    longitude double precision not null,
    _loaded_at timestamptz not null default now()
);

-- One row per (source, day): the outcome of the last attempt, and what the last
-- successful load wrote. Backfill planning, gap reports and freshness checks read it.
create table if not exists ops.load_ledger (
    source text not null,
    day date not null,
    status text not null check (status in ('succeeded', 'failed')),
    row_count integer,
    checksum text,
    flow_run_id uuid,
    loaded_at timestamptz,
    attempted_at timestamptz not null,
    error text,
    primary key (source, day)
);
