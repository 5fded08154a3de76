{#-
    Models land in exactly the schema they configure, not dbt's default `<target schema>_<custom
    schema>`: `staging`; `audit` for the marts, built and tested there and then published into
    `marts` by the pipeline; `marts` only for the dashboard's views. Models without one use the
    target schema.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
