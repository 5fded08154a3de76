-- Per-day row count and content checksum of marts.fct_daily_weather.
select
    weather_date as day,
    count(*) as row_count,
    count(distinct location_id) as distinct_keys,
    md5(string_agg(f::text, E'\n' order by location_id)) as checksum
from marts.fct_daily_weather as f
group by 1
order by 1
