{#-
    One row per location ever configured; one removed from the file keeps its row (and
    its history in the facts) with is_active false and the time it was retired. first/last_observed_date come from a lateral
    min()/max() per location, which Postgres answers from the raw table's primary key
    (location_id, observed_at) with two index probes per location: rebuilding this table
    does not scan the hourly history. (This relies on stg_open_meteo__hourly_weather
    staying a flat select; see the note there.)
-#}
with

locations as (

    select * from {{ ref('stg_open_meteo__locations') }}

),

final as (

    select
        locations.location_id,
        locations.location_name,
        locations.latitude,
        locations.longitude,
        locations.is_active,
        locations.retired_at,
        (observed.first_observed_at at time zone 'utc')::date as first_observed_date,
        (observed.last_observed_at at time zone 'utc')::date as last_observed_date
    from locations
    left join lateral (
        select
            min(hourly.observed_at) as first_observed_at,
            max(hourly.observed_at) as last_observed_at
        from {{ ref('stg_open_meteo__hourly_weather') }} as hourly
        where hourly.location_id = locations.location_id
    ) as observed on true

)

select * from final
