update ops.outbox
set attempts = attempts + 1, last_attempt_at = now(), last_error = null, delivered_at = now()
where id = %(id)s
