-- What migration 007 grants the dashboard's read-only role, again: for a role created after it ran.
grant usage on schema marts to weather_dashboard;
grant select on all tables in schema marts to weather_dashboard;
alter default privileges in schema marts grant select on tables to weather_dashboard
