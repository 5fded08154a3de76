-- Only loads that dbt could have seen: a load committed after dbt started stays pending.
update ops.load_ledger
set transformed_at = %(dbt_started_at)s
where source = %(source)s
    and day >= %(first_day)s and day <= %(last_day)s
    and status = 'succeeded'
    and loaded_at <= %(dbt_started_at)s
