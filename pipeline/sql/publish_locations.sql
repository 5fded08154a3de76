-- ...step 3: the dimension, whole (one row per location ever configured, a few thousand
-- at most): names and retirements change without touching the facts.
delete from marts.dim_locations;
insert into marts.dim_locations (
    location_id,
    location_name,
    latitude,
    longitude,
    is_active,
    retired_at,
    first_observed_date,
    last_observed_date
)
select
    location_id,
    location_name,
    latitude,
    longitude,
    is_active,
    retired_at,
    first_observed_date,
    last_observed_date
from audit.dim_locations
