-- Keeps row_count, checksum and loaded_at of the last successful load: a failed
-- attempt rolls back, so what it describes is still in the table.
insert into ops.load_ledger as l (source, day, status, flow_run_id, attempted_at, error)
select %(source)s, day, 'failed', %(flow_run_id)s, now(), %(error)s
from unnest(%(days)s::date[]) as d (day)
on conflict (source, day) do update set
    status = excluded.status,
    flow_run_id = excluded.flow_run_id,
    attempted_at = excluded.attempted_at,
    error = excluded.error
