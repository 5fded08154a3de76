-- Calls made to the archive API, as it counts them, so that a backfill can stay inside the
-- public API's hourly and daily limits and leave room for the daily runs.
create table if not exists ops.api_calls (
    called_at timestamptz not null default now(),
    calls integer not null check (calls > 0),
    flow_run_id uuid
);

create index if not exists api_calls_called_at_idx on ops.api_calls (called_at);
