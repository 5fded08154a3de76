select
    day,
    status,
    row_count is not null as loaded,
    coalesce(transformed_at >= loaded_at, false) as transformed,
    checksum,
    locations
from ops.load_ledger
where source = %(source)s and day >= %(first_day)s and day <= %(last_day)s
order by day
