-- The receiver took a message: everything still waiting for it is due now, oldest first.
update ops.outbox
set next_attempt_at = now()
where delivered_at is null and dead_at is null and next_attempt_at > now()
