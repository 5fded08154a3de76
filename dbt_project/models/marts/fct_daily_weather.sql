{#-
    One row per location and UTC day of the run window, UTC days [first_day, end_day) of
    ops.transform_window. Built in `audit` as a table of the window only: the pipeline
    publishes it into marts.fct_daily_weather (delete the window, insert these rows) once
    every test of the build has passed. It reads just the window's hourly rows, filtering
    on observed_at (not weather_date) so Postgres range-scans
    raw.hourly_weather_observed_at_idx: a run costs what its window costs, not the history.

    Sums and means are exact, so identical input always gives identical rows whatever the
    order Postgres aggregates them in (a float sum is not): each hourly value is summed as an
    integer count of millionths, `(x * 1000000)::bigint`, which is x exactly for any value
    with up to 6 decimals and below 10^9 (the API reports 1). That is the exact sum numeric
    gives, but on a year's rows the aggregation takes 3.5 s instead of 20 s: `x::numeric`
    formats every double as text. min and max stay in double precision (they pick an input
    value). Everything is rounded to 2 decimals in numeric, so min <= mean <= max holds
    exactly after rounding.

    The aggregate hashes a window's (location, day) groups in memory: a year of 1,000
    locations needs ~330 MB (a hash may use twice work_mem), and Postgres's default 4 MB
    would sort the 8.76 M hourly rows on disk instead (twice as long). `set local` lasts only
    this statement's transaction.
-#}
{{ config(pre_hook="set local work_mem = '256MB'") }}

with

hourly as (

    select * from {{ ref('stg_open_meteo__hourly_weather') }}
    where
        observed_at >= {{ window_start_utc() }}
        and observed_at < {{ window_end_utc() }}

),

daily as (

    select
        location_id,
        weather_date,
        min(temperature_2m) as temperature_2m_min,
        max(temperature_2m) as temperature_2m_max,
        avg((temperature_2m * 1000000)::bigint) / 1000000 as temperature_2m_mean,
        avg((dew_point_2m * 1000000)::bigint) / 1000000 as dew_point_2m_mean,
        avg((relative_humidity_2m * 1000000)::bigint) / 1000000 as relative_humidity_2m_mean,
        sum((precipitation * 1000000)::bigint) / 1000000 as precipitation_sum,
        avg((surface_pressure * 1000000)::bigint) / 1000000 as surface_pressure_mean,
        avg((cloud_cover * 1000000)::bigint) / 1000000 as cloud_cover_mean,
        avg((wind_speed_10m * 1000000)::bigint) / 1000000 as wind_speed_10m_mean,
        max(wind_speed_10m) as wind_speed_10m_max,
        count(temperature_2m) as hours_observed,
        count(*) as hours_loaded
    from hourly
    group by location_id, weather_date

),

final as (

    select
        location_id,
        weather_date,
        round(temperature_2m_min::numeric, 2)::double precision as temperature_2m_min,
        round(temperature_2m_max::numeric, 2)::double precision as temperature_2m_max,
        round(temperature_2m_mean, 2)::double precision as temperature_2m_mean,
        round(dew_point_2m_mean, 2)::double precision as dew_point_2m_mean,
        round(relative_humidity_2m_mean, 2)::double precision as relative_humidity_2m_mean,
        round(precipitation_sum, 2)::double precision as precipitation_sum,
        round(surface_pressure_mean, 2)::double precision as surface_pressure_mean,
        round(cloud_cover_mean, 2)::double precision as cloud_cover_mean,
        round(wind_speed_10m_mean, 2)::double precision as wind_speed_10m_mean,
        round(wind_speed_10m_max::numeric, 2)::double precision as wind_speed_10m_max,
        hours_observed::integer as hours_observed,
        hours_loaded::integer as hours_loaded
    from daily

)

select * from final
