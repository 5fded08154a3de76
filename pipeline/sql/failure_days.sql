-- The UTC days a failing test's stored rows fall on; {day} is `weather_date` or the UTC
-- date of `observed_at`, {relation} the test's view. Bounded: a message names a few days.
select distinct {day} as day
from {relation}
where {day} is not null
order by day
limit 50
