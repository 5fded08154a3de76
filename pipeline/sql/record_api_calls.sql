insert into ops.api_calls (calls, flow_run_id) values (%(calls)s, %(flow_run_id)s)
