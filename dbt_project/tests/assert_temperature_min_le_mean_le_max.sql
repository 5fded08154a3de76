{#-
    Business invariant: temperature_2m_min <= temperature_2m_mean <= temperature_2m_max.
    Reads only the run window (a singular test has no `where:` config, so it filters itself).
-#}
with

fct_daily_weather as (

    select * from {{ ref('fct_daily_weather') }}
    where
        weather_date >= '{{ window_bounds()[0] }}'
        and weather_date < '{{ window_bounds()[1] }}'

),

violations as (

    select
        location_id,
        weather_date,
        temperature_2m_min,
        temperature_2m_mean,
        temperature_2m_max
    from fct_daily_weather
    where not (
        temperature_2m_min <= temperature_2m_mean
        and temperature_2m_mean <= temperature_2m_max
    )

)

select * from violations
