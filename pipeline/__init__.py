"""A daily Prefect 3 pipeline: Open-Meteo archive API -> Postgres -> dbt."""
