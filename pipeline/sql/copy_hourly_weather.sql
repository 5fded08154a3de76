copy raw.hourly_weather (
    location_id,
    observed_at,
    temperature_2m,
    relative_humidity_2m,
    dew_point_2m,
    precipitation,
    surface_pressure,
    cloud_cover,
    wind_speed_10m,
    wind_direction_10m
) from stdin (format binary)
