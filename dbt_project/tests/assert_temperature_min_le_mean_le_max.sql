{#-
    Business invariant: temperature_2m_min <= temperature_2m_mean <= temperature_2m_max.
    audit.fct_daily_weather holds only the run window, so this reads only the window.
-#}
with

fct_daily_weather as (

    select * from {{ ref('fct_daily_weather') }}

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
