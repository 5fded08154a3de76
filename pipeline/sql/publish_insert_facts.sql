-- ...step 2: insert what the build wrote to audit and its tests passed...
insert into marts.fct_daily_weather (
    location_id,
    weather_date,
    temperature_2m_min,
    temperature_2m_max,
    temperature_2m_mean,
    dew_point_2m_mean,
    relative_humidity_2m_mean,
    precipitation_sum,
    surface_pressure_mean,
    cloud_cover_mean,
    wind_speed_10m_mean,
    wind_speed_10m_max,
    hours_observed,
    hours_loaded
)
select
    location_id,
    weather_date,
    temperature_2m_min,
    temperature_2m_max,
    temperature_2m_mean,
    dew_point_2m_mean,
    relative_humidity_2m_mean,
    precipitation_sum,
    surface_pressure_mean,
    cloud_cover_mean,
    wind_speed_10m_mean,
    wind_speed_10m_max,
    hours_observed,
    hours_loaded
from audit.fct_daily_weather
where weather_date >= %(first_day)s and weather_date < %(end_day)s
