-- Who holds the session-level advisory lock on hashtext(name): one bigint key is stored as
-- classid (high 32 bits) and objid (low 32 bits), with objsubid 1.
select a.pid, a.application_name, a.state
from pg_locks as l
join pg_stat_activity as a on a.pid = l.pid
where l.locktype = 'advisory'
    and l.granted
    and l.objsubid = 1
    and l.objid = (hashtext(%(name)s)::bigint & 4294967295)::oid
    and l.database = (select oid from pg_database where datname = current_database())
limit 1
