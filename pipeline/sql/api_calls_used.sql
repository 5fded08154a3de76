-- Calls counted since the start of the current UTC hour, and of the current UTC day.
select
    coalesce(sum(calls) filter (where called_at >= %(hour_start)s), 0) as hour,
    coalesce(sum(calls), 0) as day
from ops.api_calls
where called_at >= %(day_start)s
