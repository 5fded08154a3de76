{#-
    One row per location and UTC day.

    Incremental runs rebuild only the run window, UTC days [window_start, window_end).
    They read just the window's hourly rows, filtering on observed_at (not weather_date)
    so Postgres range-scans raw.hourly_weather_observed_at_idx (created by the loader's
    migration; Postgres 18 can also skip-scan the primary key), then delete+insert those
    (location_id, weather_date) keys: one statement pair whatever the window's length,
    and a cost that follows the window, not the history. The unique index on
    (weather_date, location_id) enforces the grain and lets both the delete and the
    window-scoped tests range-scan the mart. A first run or --full-refresh reads all of
    history and ignores the window.

    Aggregates are computed in numeric (exact, independent of row order, unlike float
    sums) and rounded to 2 decimals (the API reports 1), so identical input always gives
    identical rows, and min <= mean <= max holds exactly after rounding.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['location_id', 'weather_date'],
        incremental_predicates=[
            "DBT_INTERNAL_DEST.weather_date >= '" ~ window_bounds()[0] ~ "'::date",
            "DBT_INTERNAL_DEST.weather_date < '" ~ window_bounds()[1] ~ "'::date",
        ],
        indexes=[{'columns': ['weather_date', 'location_id'], 'unique': true}],
        on_schema_change='fail',
    )
}}

with

hourly as (

    select * from {{ ref('stg_open_meteo__hourly_weather') }}
    {%- if is_incremental() %}
    where observed_at >= {{ window_start_utc() }}
        and observed_at < {{ window_end_utc() }}
    {%- endif %}

),

daily as (

    select
        location_id,
        weather_date,
        min(temperature_2m::numeric) as temperature_2m_min,
        max(temperature_2m::numeric) as temperature_2m_max,
        avg(temperature_2m::numeric) as temperature_2m_mean,
        avg(dew_point_2m::numeric) as dew_point_2m_mean,
        avg(relative_humidity_2m::numeric) as relative_humidity_2m_mean,
        sum(precipitation::numeric) as precipitation_sum,
        avg(surface_pressure::numeric) as surface_pressure_mean,
        avg(cloud_cover::numeric) as cloud_cover_mean,
        avg(wind_speed_10m::numeric) as wind_speed_10m_mean,
        max(wind_speed_10m::numeric) as wind_speed_10m_max,
        count(temperature_2m) as hours_observed,
        count(*) as hours_loaded
    from hourly
    group by location_id, weather_date

),

final as (

    select
        location_id,
        weather_date,
        round(temperature_2m_min, 2)::double precision as temperature_2m_min,
        round(temperature_2m_max, 2)::double precision as temperature_2m_max,
        round(temperature_2m_mean, 2)::double precision as temperature_2m_mean,
        round(dew_point_2m_mean, 2)::double precision as dew_point_2m_mean,
        round(relative_humidity_2m_mean, 2)::double precision as relative_humidity_2m_mean,
        round(precipitation_sum, 2)::double precision as precipitation_sum,
        round(surface_pressure_mean, 2)::double precision as surface_pressure_mean,
        round(cloud_cover_mean, 2)::double precision as cloud_cover_mean,
        round(wind_speed_10m_mean, 2)::double precision as wind_speed_10m_mean,
        round(wind_speed_10m_max, 2)::double precision as wind_speed_10m_max,
        hours_observed::integer as hours_observed,
        hours_loaded::integer as hours_loaded
    from daily

)

select * from final
