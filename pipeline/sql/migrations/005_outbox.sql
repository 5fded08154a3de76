-- Every notification is written here first, in the transaction that claims or closes its
-- alert, then delivered until the receiver answers 2xx: a receiver that is down when a run
-- fails gets the message later, from the next pipeline command or the freshness timer.
-- The body is stored exactly as sent (signatures cover it); the URL and the signing key
-- are not stored: they are read from the settings at each attempt.
create table if not exists ops.outbox (
    id bigserial primary key,
    -- The `webhook-id` of every attempt: receivers drop repeats by it.
    message_id text not null unique,
    event_type text not null,
    body text not null,
    created_at timestamptz not null default now(),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_attempt_at timestamptz,
    last_error text,
    delivered_at timestamptz
);

create index if not exists outbox_undelivered_idx on ops.outbox (next_attempt_at) where delivered_at is null;


-- The last attempt at a day, beside its last success: a day that has landed keeps status
-- 'succeeded' (its rows are still those of that load) when a later attempt fails, and the
-- failure is recorded here, in attempted_at and in error.
alter table ops.load_ledger add column if not exists last_attempt_status text;
alter table ops.load_ledger add column if not exists last_attempt_flow_run_id uuid;
