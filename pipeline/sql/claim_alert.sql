-- Returns a row only for the first claim of an alert; later claims get nothing. An alert
-- whose day has recovered since is claimed again: failing again is a new event.
insert into ops.alerts as a (deployment, logical_date, kind, flow_run_id)
values (%(deployment)s, %(logical_date)s, %(kind)s, %(flow_run_id)s)
on conflict (deployment, logical_date, kind) do update set
    flow_run_id = excluded.flow_run_id,
    sent_at = now(),
    recovered_at = null
where a.recovered_at is not null
returning sent_at
