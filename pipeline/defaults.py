"""Defaults shared by the settings and the source API block, so neither reads the other's."""

SOURCE_URL = "https://archive-api.open-meteo.com"
HTTP_TIMEOUT_SECONDS = 30.0
# Name of the Prefect global concurrency limit (with slot decay) created by the deploy step.
SOURCE_RATE_LIMIT = "open-meteo-api"
