select
    id,
    message_id,
    event_type,
    created_at,
    attempts,
    last_attempt_at,
    last_error,
    next_attempt_at,
    dead_at
from ops.outbox
where delivered_at is null
order by id
