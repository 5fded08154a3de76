-- Filled in by warehouse.hourly_query: the table is raw.hourly_weather (or one like it), the
-- variables the API's (extract.VARIABLES) in their order, the order of each binary row's fields.
copy {table} (location_id, observed_at, {variables}) from stdin (format binary)
