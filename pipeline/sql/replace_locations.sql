-- The file is merged, not copied over: a location that leaves it stays, retired, so its
-- history keeps a dimension row. The lock keeps two runs from interleaving their merges.
select pg_advisory_xact_lock(hashtext('raw.locations'));
create temporary table locations_file (
    location_id text primary key,
    name text not null,
    latitude double precision not null,
    longitude double precision not null
) on commit drop
