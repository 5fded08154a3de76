-- The role the BI dashboard connects as: it reads the published marts and nothing else (no raw,
-- audit or ops). Roles belong to the whole Postgres cluster, so another database of the same
-- cluster may have created it already. Its password comes from the dashboard's secret file
-- (`pipeline dashboard deploy` sets it), never from this file.
do $$
begin
    create role weather_dashboard login;
exception when duplicate_object or unique_violation then
    null;
end
$$;
alter role weather_dashboard set default_transaction_read_only = on;
grant usage on schema marts to weather_dashboard;
grant select on all tables in schema marts to weather_dashboard;
-- Tables and views created later in marts by this warehouse's user (publish, dbt's views).
alter default privileges in schema marts grant select on tables to weather_dashboard;
