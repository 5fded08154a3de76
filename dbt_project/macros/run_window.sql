{#-
    The run window: UTC days [window_start, window_end), passed as --vars in 'YYYY-MM-DD'.

    window_bounds() checks both vars (format, start < end) and returns them as strings, so
    a malformed value fails at compile time instead of being spliced into SQL.
    window_start_utc() / window_end_utc() render them as timestamptz literals at UTC
    midnight, for comparing with `observed_at` (the raw table's key) so Postgres can
    range-scan. Use `'<date>'::timestamp at time zone 'utc'`, never
    `'<date>'::date at time zone 'utc'`: the latter yields a timestamp *without* time zone
    that is then read back in the session's time zone.

    YAML test configs (`where:`) cannot call macros, so they use var() directly.
-#}
{% macro window_bounds() %}
    {%- set bounds = [] -%}
    {%- for name in ['window_start', 'window_end'] -%}
        {%- set value = var(name) | string | trim -%}
        {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', value) -%}
            {{ exceptions.raise_compiler_error(
                "var '" ~ name ~ "' must be a date 'YYYY-MM-DD', got '" ~ value ~ "'"
            ) }}
        {%- endif -%}
        {%- do bounds.append(value) -%}
    {%- endfor -%}
    {%- if bounds[0] >= bounds[1] -%}
        {{ exceptions.raise_compiler_error(
            "window_start (" ~ bounds[0] ~ ") must be before window_end (" ~ bounds[1] ~ ")"
        ) }}
    {%- endif -%}
    {{ return(bounds) }}
{% endmacro %}

{% macro window_start_utc() -%}
    ('{{ window_bounds()[0] }}'::timestamp at time zone 'utc')
{%- endmacro %}

{% macro window_end_utc() -%}
    ('{{ window_bounds()[1] }}'::timestamp at time zone 'utc')
{%- endmacro %}
