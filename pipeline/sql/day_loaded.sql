-- Whether the day's run delivered: loaded and published. An incomplete day counts, since
-- the archive fills recent days late; one still incomplete past the revision horizon is
-- reported by its own query (incomplete_days.sql), not as a late run.
select status in ('succeeded', 'incomplete') and coalesce(transformed_at >= loaded_at, false)
from ops.load_ledger
where source = %(source)s and day = %(day)s
