{#-
    The run window: UTC days [first_day, end_day), one row of ops.transform_window that the
    pipeline writes before each build. Read at run time rather than passed as --vars, so
    that a new window leaves dbt's partial parsing intact.

    window_start_utc() / window_end_utc() are timestamptz bounds at UTC midnight, for
    comparing with `observed_at` (the raw table's key): Postgres evaluates the scalar
    subquery once and range-scans the index with its value. window_first_day() /
    window_end_day() are the same bounds as dates, for `weather_date`.

    YAML test configs (`where:`) cannot call macros, so they spell the same subqueries out.
-#}
{% macro window_first_day() -%}
    (select first_day from {{ source('pipeline', 'transform_window') }})
{%- endmacro %}

{% macro window_end_day() -%}
    (select end_day from {{ source('pipeline', 'transform_window') }})
{%- endmacro %}

{% macro window_start_utc() -%}
    ({{ window_first_day() }}::timestamp at time zone 'utc')
{%- endmacro %}

{% macro window_end_utc() -%}
    ({{ window_end_day() }}::timestamp at time zone 'utc')
{%- endmacro %}
