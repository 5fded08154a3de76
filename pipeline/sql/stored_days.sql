-- What the table holds for each day that the ledger knows, for the locations being
-- loaded: their row count now, and the checksum of the last successful load (failed
-- attempts roll back, so it still applies).
select
    l.day,
    (
        select count(*)
        from raw.hourly_weather as h
        where h.observed_at >= l.day::timestamp at time zone 'UTC'
            and h.observed_at < (l.day + 1)::timestamp at time zone 'UTC'
            and h.location_id = any(%(locations)s::text[])
    ) as row_count,
    l.checksum
from ops.load_ledger as l
where l.source = %(source)s and l.day = any(%(days)s::date[]) and l.checksum is not null
