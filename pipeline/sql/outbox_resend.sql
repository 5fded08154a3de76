-- One undelivered message by id, dead-lettered or not, for a resend by hand.
select id, message_id, event_type, body, attempts
from ops.outbox
where id = %(id)s and delivered_at is null
for update
