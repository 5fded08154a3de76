"""The BI dashboard: Apache Superset on the published marts, deployed as code and refreshed after each publish."""
