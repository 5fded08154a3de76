delete from raw.hourly_weather
where observed_at >= %(start)s and observed_at < %(end)s
