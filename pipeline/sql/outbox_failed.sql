-- A failed attempt; past the attempt count or the age limit the message is dead-lettered.
update ops.outbox
set
    attempts = attempts + 1,
    last_attempt_at = now(),
    last_error = %(error)s,
    next_attempt_at = now() + make_interval(secs => %(retry_in)s),
    dead_at = case
        when dead_at is not null then dead_at
        when
            attempts + 1 >= %(dead_after_attempts)s
            or created_at <= now() - make_interval(secs => %(dead_after_seconds)s)
            then now()
    end
where id = %(id)s
returning attempts, dead_at is not null
