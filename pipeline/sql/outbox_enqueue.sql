-- The same event enqueued twice (a state hook run again) is one message.
insert into ops.outbox (message_id, event_type, body)
values (%(message_id)s, %(event_type)s, %(body)s)
on conflict (message_id) do nothing
