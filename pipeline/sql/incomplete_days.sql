-- Days still incomplete (some location-hour lacks a value) before a given day, oldest first.
select day
from ops.load_ledger
where source = %(source)s and status = 'incomplete' and day < %(before)s
order by day
