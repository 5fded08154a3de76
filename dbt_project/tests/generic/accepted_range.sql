{#-
    Fails for every row whose column lies outside [min_value, max_value] (inclusive).
    Either bound may be omitted; nulls pass (pair with not_null where needed).
-#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}

{%- if min_value is none and max_value is none %}
    {{ exceptions.raise_compiler_error("accepted_range needs min_value, max_value or both") }}
{%- endif %}

with

out_of_range as (

    select *
    from {{ model }}
    where
        {%- if min_value is not none %}
        {{ column_name }} < {{ min_value }}
        {%- endif %}
        {%- if min_value is not none and max_value is not none %}
        or
        {%- endif %}
        {%- if max_value is not none %}
        {{ column_name }} > {{ max_value }}
        {%- endif %}

)

select * from out_of_range

{% endtest %}
