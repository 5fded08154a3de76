{#-
    A single flat select, not the house CTE chain, on purpose: Postgres does not flatten
    a view whose body has a WITH clause into the query that reads it, so ORDER BY/LIMIT
    and min()/max() through the view could no longer use the raw key
    (location_id, observed_at) and would read every hour of a location's history.
    (Window filters on observed_at are pushed down either way.)
-#}
select
    location_id,
    observed_at,
    (observed_at at time zone 'utc')::date as weather_date,
    temperature_2m,
    relative_humidity_2m,
    dew_point_2m,
    precipitation,
    surface_pressure,
    cloud_cover,
    wind_speed_10m,
    wind_direction_10m,
    _loaded_at
from {{ source('open_meteo', 'hourly_weather') }}
