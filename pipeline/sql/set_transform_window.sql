-- The window the next dbt build covers; dbt's models and tests read it at run time.
update ops.transform_window
set first_day = %(first_day)s, end_day = %(end_day)s
