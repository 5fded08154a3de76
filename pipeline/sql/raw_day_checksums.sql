-- Per-day row count and content checksum of raw.hourly_weather, load metadata excluded:
-- two warehouses with equal results hold the same observations. The variables are the API's
-- (extract.VARIABLES), filled in by warehouse.hourly_query.
select
    (observed_at at time zone 'UTC')::date as day,
    count(*) as row_count,
    count(distinct (location_id, observed_at)) as distinct_keys,
    md5(string_agg(
        concat_ws('|', location_id, observed_at, {variables}),
        E'\n' order by location_id, observed_at
    )) as checksum
from raw.hourly_weather
group by 1
order by 1
