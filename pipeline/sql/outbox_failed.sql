update ops.outbox
set attempts = attempts + 1,
    last_attempt_at = now(),
    last_error = %(error)s,
    next_attempt_at = now() + make_interval(secs => %(retry_in)s)
where id = %(id)s
