"""Superset's configuration for the weather dashboard, read by Superset through SUPERSET_CONFIG_PATH.

Every secret comes from the environment (the stack's secret file or the VM's env file), never from here.
"""

import os

# Superset refuses to start with its default key; there is deliberately no fallback.
SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]

_home = os.environ.get("SUPERSET_HOME", os.path.expanduser("~/.superset"))
# Postgres wherever Superset is long-lived (`pipeline up`, the systemd unit); SQLite only for tests.
SQLALCHEMY_DATABASE_URI = os.environ.get("SUPERSET_METADATA_URL") or f"sqlite:///{_home}/superset.db"

# Chart results are cached until the pipeline publishes new data and refreshes them (or a day passes);
# a file cache is shared by every gunicorn worker and needs no extra service.
_cache = {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": os.path.join(_home, "cache"), "CACHE_DEFAULT_TIMEOUT": 86400}
DATA_CACHE_CONFIG = {**_cache, "CACHE_KEY_PREFIX": "weather_data_"}
CACHE_CONFIG = {**_cache, "CACHE_KEY_PREFIX": "weather_meta_", "CACHE_DEFAULT_TIMEOUT": 300}

# Every chart renders when the dashboard opens, not only those scrolled into view: the page is short,
# and a screenshot or a browser test sees all of it.
FEATURE_FLAGS = {"ALERT_REPORTS": False, "THUMBNAILS": False, "DASHBOARD_VIRTUALIZATION": False}
# The pipeline's refresh invalidates cached results by dataset, which needs the keys recorded.
STORE_CACHE_KEYS_IN_METADATA_DB = True
# The freshness card colours itself red or green with an inline style; only admins write charts.
HTML_SANITIZATION_SCHEMA_EXTENSIONS = {"attributes": {"div": ["style"], "span": ["style"]}}
# Served on a private address or behind the VM's reverse proxy, which sets the headers.
TALISMAN_ENABLED = False
CONTENT_SECURITY_POLICY_WARNING = False
# Row-level data never leaves in logs.
LOG_LEVEL = os.environ.get("SUPERSET_LOG_LEVEL", "WARNING")
