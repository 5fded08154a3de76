-- Keeps row_count, checksum and loaded_at of the last successful load: a failed
-- attempt rolls back, so what it describes is still in the table. A day that has
-- landed (or landed incomplete) keeps its status and that load's flow run; the attempt
-- is recorded beside it. Rows that were loaded and then failed their data tests are
-- the day's content: %(content_failed)s marks the day itself failed.
insert into ops.load_ledger as l (
    source, day, status, flow_run_id, attempted_at, error, last_attempt_status, last_attempt_flow_run_id
)
select %(source)s, day, 'failed', %(flow_run_id)s, now(), %(error)s, 'failed', %(flow_run_id)s
from unnest(%(days)s::date[]) as d (day)
on conflict (source, day) do update set
    status = case
        when l.status in ('succeeded', 'incomplete') and not %(content_failed)s then l.status
        else excluded.status
    end,
    flow_run_id = case
        when l.status in ('succeeded', 'incomplete') and not %(content_failed)s then l.flow_run_id
        else excluded.flow_run_id
    end,
    attempted_at = excluded.attempted_at,
    error = excluded.error,
    last_attempt_status = excluded.last_attempt_status,
    last_attempt_flow_run_id = excluded.last_attempt_flow_run_id
