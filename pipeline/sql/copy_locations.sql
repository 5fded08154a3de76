copy raw.locations (location_id, name, latitude, longitude) from stdin
