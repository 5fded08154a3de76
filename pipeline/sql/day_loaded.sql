select status = 'succeeded' and coalesce(transformed_at >= loaded_at, false)
from ops.load_ledger
where source = %(source)s and day = %(day)s
