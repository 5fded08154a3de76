-- One row per alert sent: (deployment, logical date, kind) is sent at most once, so a
-- failing day retried ten times, or a late day checked every 15 minutes, alerts once.
create table if not exists ops.alerts (
    deployment text not null,
    logical_date date not null,
    kind text not null,
    flow_run_id uuid,
    sent_at timestamptz not null default now(),
    recovered_at timestamptz,
    primary key (deployment, logical_date, kind)
);
