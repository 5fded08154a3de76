{#-
    Models land in exactly the schema they configure (`staging`, `audit`: the marts are built and
    tested in `audit`, then published into `marts` by the pipeline), not dbt's default
    `<target schema>_<custom schema>`. Models without one use the target schema.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
