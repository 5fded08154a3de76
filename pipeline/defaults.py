"""Defaults shared by the settings and the source API block, so neither reads the other's."""

SOURCE_URL = "https://archive-api.open-meteo.com"
HTTP_TIMEOUT_SECONDS = 30.0
# Name of the Prefect global concurrency limit (with slot decay) created by the deploy step.
SOURCE_RATE_LIMIT = "open-meteo-api"

# Nothing may call home: the pipeline runs on machines with no internet at all. Every process the
# pipeline starts (and the tests, the bench and the drill) gets these; `./dev`, prefect.yaml and
# deployments/weather.env.example set the same for processes started from outside.
OFFLINE_ENV = {
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}
