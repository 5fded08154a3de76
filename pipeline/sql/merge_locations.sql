-- New and changed locations from the file; one back in the file is active again.
insert into raw.locations as l (location_id, name, latitude, longitude, retired_at, _loaded_at)
select location_id, name, latitude, longitude, null, now()
from pg_temp.locations_file
on conflict (location_id) do update set
    name = excluded.name,
    latitude = excluded.latitude,
    longitude = excluded.longitude,
    retired_at = null,
    _loaded_at = excluded._loaded_at;

-- Locations no longer in the file are retired once, when they leave it.
update raw.locations
set retired_at = now()
where retired_at is null
    and location_id not in (select location_id from pg_temp.locations_file)
