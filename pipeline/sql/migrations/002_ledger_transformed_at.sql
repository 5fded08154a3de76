-- When dbt last rebuilt the marts from a day's successful load: a day loaded after
-- that (or never transformed) still needs a dbt run, e.g. after a backfill was killed
-- between its loads and its dbt run.
alter table ops.load_ledger add column if not exists transformed_at timestamptz;
