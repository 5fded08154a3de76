-- The columns of a failing test's stored rows (a table in `audit`), to find their days.
select column_name
from information_schema.columns
where table_schema = %(schema)s and table_name = %(name)s
