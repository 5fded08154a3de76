-- The whole file is replaced; the lock keeps two runs from interleaving their copies.
select pg_advisory_xact_lock(hashtext('raw.locations'));
delete from raw.locations
