-- The oldest waiting message after %(after)s, as soon as any message is due: the receiver
-- gets them in the order they were written, so a new message never overtakes an older one that
-- waits out its backoff (recovery reported before the failure). Locked so that two commands
-- delivering at once do not send it twice; a message another command is sending is skipped.
-- Dead-lettered messages wait for a hand-made resend instead.
select id, message_id, event_type, body, attempts
from ops.outbox
where
    delivered_at is null
    and dead_at is null
    and id > %(after)s
    and exists (
        select from ops.outbox as due
        where
            due.delivered_at is null
            and due.dead_at is null
            and due.next_attempt_at <= now()
    )
order by id
limit 1
for update skip locked
