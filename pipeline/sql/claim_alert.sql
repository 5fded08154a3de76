-- Returns a row only for the first claim of an alert; later claims get nothing.
insert into ops.alerts (deployment, logical_date, kind, flow_run_id)
values (%(deployment)s, %(logical_date)s, %(kind)s, %(flow_run_id)s)
on conflict (deployment, logical_date, kind) do nothing
returning kind
