{#-
    One row per UTC day from the first day in the ledger to the latest day due by the deadline
    (PIPELINE_DEADLINE, as pipeline/freshness.py): landed, incomplete, failed or missing.
    A day loaded but not published since (its tests failed, or the run stopped before
    publishing) counts as failed: the marts do not hold what was loaded.
-#}
with

ledger as (

    select * from {{ source('pipeline', 'load_ledger') }}
    where source = 'open-meteo-archive'

),

due as (

    select * from {{ ref('rpt_freshness') }}

),

days as (

    select calendar.calendar_day::date as logical_date
    from due
    cross join lateral generate_series(
        coalesce((select min(ledger.day) from ledger), due.due_date), due.due_date, interval '1 day'
    ) as calendar (calendar_day)

),

final as (

    select
        days.logical_date,
        case
            when ledger.day is null then 'missing'
            when ledger.status = 'failed' then 'failed'
            when not coalesce(ledger.transformed_at >= ledger.loaded_at, false) then 'failed'
            when ledger.status = 'incomplete' then 'incomplete'
            else 'landed'
        end as day_status,
        ledger.row_count,
        ledger.loaded_at,
        ledger.transformed_at as published_at,
        ledger.error
    from days
    left join ledger on days.logical_date = ledger.day

)

select * from final
