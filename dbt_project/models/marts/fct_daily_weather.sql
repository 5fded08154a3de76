{#-
    One row per location and UTC day of the run window, UTC days [first_day, end_day) of
    ops.transform_window. Built in `audit` as a table of the window only: the pipeline
    publishes it into marts.fct_daily_weather (delete the window, insert these rows) once
    every test of the build has passed. It reads just the window's hourly rows, filtering
    on observed_at (not weather_date) so Postgres range-scans
    raw.hourly_weather_observed_at_idx: a run costs what its window costs, not the history.

    Sums and means are computed in numeric (exact, independent of row order, unlike float
    sums); min and max stay in double precision (they pick an input value, exact in either
    type, and numeric aggregation costs ~2x on a year's rows). Everything is rounded to 2
    decimals in numeric (the API reports 1), so identical input always gives identical rows,
    and min <= mean <= max holds exactly after rounding.
-#}
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
        avg(temperature_2m::numeric) as temperature_2m_mean,
        avg(dew_point_2m::numeric) as dew_point_2m_mean,
        avg(relative_humidity_2m::numeric) as relative_humidity_2m_mean,
        sum(precipitation::numeric) as precipitation_sum,
        avg(surface_pressure::numeric) as surface_pressure_mean,
        avg(cloud_cover::numeric) as cloud_cover_mean,
        avg(wind_speed_10m::numeric) as wind_speed_10m_mean,
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
