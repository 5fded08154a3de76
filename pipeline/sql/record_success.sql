insert into ops.load_ledger as l (
    source, day, status, row_count, checksum, flow_run_id, loaded_at, attempted_at, error,
    last_attempt_status, last_attempt_flow_run_id
)
select
    %(source)s, day, 'succeeded', row_count, checksum, %(flow_run_id)s, now(), now(), null,
    'succeeded', %(flow_run_id)s
from unnest(%(days)s::date[], %(row_counts)s::integer[], %(checksums)s::text[]) as d (day, row_count, checksum)
on conflict (source, day) do update set
    status = excluded.status,
    row_count = excluded.row_count,
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
