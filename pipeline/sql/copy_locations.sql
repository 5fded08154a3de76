copy pg_temp.locations_file (location_id, name, latitude, longitude) from stdin
