-- One row per day of the window, described from what raw.hourly_weather now holds for it
-- (every location, not only this load's): the rows, the location-hours with every
-- value, and which locations the day has. A day with any null value is incomplete.
-- The variables are the API's (extract.VARIABLES), filled in by warehouse.hourly_query.
with

loads as (

    select day, checksum
    from unnest(%(days)s::date[], %(checksums)s::text[]) as d (day, checksum)

),

contents as (

    select
        (observed_at at time zone 'UTC')::date as day,
        count(*) as row_count,
        count(*) filter (where num_nulls({variables}) = 0) as complete_hours,
        array_agg(distinct location_id) as locations
    from raw.hourly_weather
    where observed_at >= %(start)s and observed_at < %(end)s
    group by 1

)

insert into ops.load_ledger as l (
    source, day, status, row_count, complete_hours, locations, checksum, flow_run_id, loaded_at, attempted_at, error,
    last_attempt_status, last_attempt_flow_run_id
)
select
    %(source)s,
    loads.day,
    case when coalesce(c.complete_hours, 0) < coalesce(c.row_count, 0) then 'incomplete' else 'succeeded' end,
    coalesce(c.row_count, 0),
    coalesce(c.complete_hours, 0),
    coalesce(c.locations, array[]::text[]),
    loads.checksum,
    %(flow_run_id)s,
    now(),
    now(),
    null,
    case when coalesce(c.complete_hours, 0) < coalesce(c.row_count, 0) then 'incomplete' else 'succeeded' end,
    %(flow_run_id)s
from loads
left join contents as c on c.day = loads.day
on conflict (source, day) do update set
    status = excluded.status,
    row_count = excluded.row_count,
    complete_hours = excluded.complete_hours,
    locations = excluded.locations,
    checksum = excluded.checksum,
    flow_run_id = excluded.flow_run_id,
    -- loaded_at is when the day's content last changed: an identical reload keeps it, so
    -- the marts built from that content stay current.
    loaded_at = case when l.checksum = excluded.checksum and l.row_count = excluded.row_count
                     then l.loaded_at else excluded.loaded_at end,
    attempted_at = excluded.attempted_at,
    error = null,
    last_attempt_status = excluded.last_attempt_status,
    last_attempt_flow_run_id = excluded.last_attempt_flow_run_id
