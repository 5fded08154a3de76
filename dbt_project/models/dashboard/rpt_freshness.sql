{#-
    One row: what the dashboard shows as "data as of" and whether it is stale. The latest day due
    is the one pipeline/freshness.py checks: the run for day D must have completed by
    PIPELINE_DEADLINE (UTC, default 07:00) on D+1. It is late until the ledger says it landed
    (loaded, and published since), exactly what the late alert tests; "stale since" is the
    deadline of the first day after the last one that landed. A view: the clock is read
    whenever the dashboard asks, not when dbt built it.
-#}
with

settings as (

    select
        '{{ env_var("PIPELINE_DEADLINE", "07:00") }}'::time as deadline,
        now() at time zone 'utc' as now_utc

),

ledger as (

    select * from {{ source('pipeline', 'load_ledger') }}
    where source = 'open-meteo-archive'

),

published as (

    select * from {{ source('published', 'fct_daily_weather') }}

),

due as (

    select
        deadline,
        now_utc,
        now_utc::date - case when now_utc::time >= deadline then 1 else 2 end as due_date
    from settings

),

landed as (

    select ledger.day
    from ledger
    cross join due
    where
        ledger.status in ('succeeded', 'incomplete')
        and coalesce(ledger.transformed_at >= ledger.loaded_at, false)
        and ledger.day <= due.due_date

),

latest as (

    select max(weather_date) as latest_date
    from published

),

latest_locations as (

    select count(distinct published.location_id) as location_count
    from published
    inner join latest on published.weather_date = latest.latest_date

),

final as (

    select
        latest.latest_date,
        latest_locations.location_count,
        due.due_date,
        due.deadline,
        (select max(landed.day) from landed) as last_landed_date,
        not exists (
            select from landed
            where landed.day = due.due_date
        ) as is_late,
        (coalesce((select max(landed.day) from landed) + 1, due.due_date) + 1) + due.deadline as stale_since_utc
    from due
    cross join latest
    cross join latest_locations

)

select
    latest_date,
    location_count,
    due_date,
    deadline,
    last_landed_date,
    is_late,
    case when is_late then stale_since_utc end as stale_since_utc,
    case
        when is_late then 'STALE since ' || to_char(stale_since_utc, 'YYYY-MM-DD HH24:MI') || ' UTC'
        else 'Fresh: ' || to_char(due_date, 'YYYY-MM-DD') || ' landed'
    end as freshness_label
from final
