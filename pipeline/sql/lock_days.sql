-- Serialise loads that touch the same days (two runs of one day, a backfill over the
-- daily window); days are locked in ascending order so overlapping windows cannot deadlock.
select pg_advisory_xact_lock(hashtext('raw.hourly_weather'), day - date '2000-01-01')
from unnest(%(days)s::date[]) with ordinality as d (day, n)
order by n
