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

# Seconds between a flow run's heartbeats. The weather-crashed-runs automation marks a run Crashed 90 s
# after its last one; Prefect's default is 180 s, so a run started with it would be marked Crashed while
# still running. prefect.yaml sets this for deployment runs, the `pipeline` command for the runs it
# starts, deployments/weather.env.example for everything else on a VM.
HEARTBEAT_SECONDS = 30
