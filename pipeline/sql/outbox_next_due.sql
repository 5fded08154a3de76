-- One undelivered message whose attempt is due, locked so that two commands delivering
-- at once do not send it twice; a message another command is sending is skipped.
select id, message_id, event_type, body, attempts
from ops.outbox
where delivered_at is null and next_attempt_at <= now() and id > %(after)s
order by id
limit 1
for update skip locked
