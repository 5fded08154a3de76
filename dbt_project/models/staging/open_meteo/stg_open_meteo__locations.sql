with

source as (

    select * from {{ source('open_meteo', 'locations') }}

),

final as (

    select
        location_id,
        name as location_name,
        latitude,
        longitude,
        retired_at is null as is_active,
        retired_at,
        _loaded_at
    from source

)

select * from final
