-- The open alerts of a logical date that has now landed, whichever deployment of the flow
-- raised them (a day fixed by a manual run recovers the scheduled deployment's alert).
update ops.alerts
set recovered_at = now()
where split_part(deployment, '/', 1) = %(flow)s and logical_date = %(logical_date)s and recovered_at is null
returning kind
