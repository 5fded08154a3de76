select f.weather_date, l.location_name, f.temperature_2m_min, f.temperature_2m_max, f.precipitation_sum, f.hours_observed
from marts.fct_daily_weather as f
inner join marts.dim_locations as l using (location_id)
where f.weather_date = (select max(weather_date) from marts.fct_daily_weather)
order by l.location_name
