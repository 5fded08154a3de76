-- Only the fetched locations' rows: a location not in this load (retired, or not part of
-- a backfill that fills one new location) keeps what it has.
delete from raw.hourly_weather
where observed_at >= %(start)s and observed_at < %(end)s
    and location_id = any(%(locations)s::text[])
