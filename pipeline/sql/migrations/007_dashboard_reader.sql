-- The role the BI dashboard connects as: it reads the published marts and nothing else (no raw,
-- audit or ops). Its password comes from the dashboard's secret file (`pipeline dashboard deploy`
-- sets it), never from this file. Roles belong to the whole Postgres cluster: another database of
-- the cluster may have created it already, or a DBA may, where the warehouse's user may not create
-- roles; the grants then follow once the role exists (`pipeline dashboard deploy` applies them too).
do $$
begin
    if not exists (select from pg_roles where rolname = 'weather_dashboard') then
        begin
            create role weather_dashboard login;
            alter role weather_dashboard set default_transaction_read_only = on;
        exception
            when duplicate_object or unique_violation then null;
            when insufficient_privilege then
                raise notice 'role weather_dashboard not created: this user may not create roles';
                return;
        end;
    end if;
    grant usage on schema marts to weather_dashboard;
    grant select on all tables in schema marts to weather_dashboard;
    -- Tables and views created later in marts by this warehouse's user (publish, dbt's views).
    alter default privileges in schema marts grant select on tables to weather_dashboard;
end
$$;
