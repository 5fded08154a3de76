-- A message whose receiver never takes it is not retried forever: after
-- PIPELINE_OUTBOX_DEAD_AFTER_ATTEMPTS failed attempts or PIPELINE_OUTBOX_DEAD_AFTER_HOURS it is
-- dead-lettered: left out of delivery, listed by `pipeline alerts`, re-sent by hand with
-- `pipeline alerts --resend ID`.
alter table ops.outbox add column if not exists dead_at timestamptz;

create index if not exists outbox_waiting_idx on ops.outbox (id)
where delivered_at is null and dead_at is null;
