"""A local server that answers like the public Open-Meteo archive API, with deterministic data."""

from pipeline.source_server.faults import FAULTS_ENV, HOT_DAY_TEMPERATURE, PAYLOAD_FAULTS, RATE_FAULTS, FaultPlan
from pipeline.source_server.http import DAILY_LIMIT_REASON, MINUTELY_LIMIT_REASON, SourceServer, serve
from pipeline.source_server.query import (
    ARCHIVE_PATH,
    FIRST_DATE,
    LAST_DATE,
    UNITS,
    VARIABLES,
    ArchiveQuery,
    BadRequest,
    parse_query,
)
from pipeline.source_server.weather import GENERATION_TIME_MS, archive_objects, encode_archive, generate

__all__ = [
    "ARCHIVE_PATH",
    "DAILY_LIMIT_REASON",
    "FAULTS_ENV",
    "FIRST_DATE",
    "GENERATION_TIME_MS",
    "HOT_DAY_TEMPERATURE",
    "LAST_DATE",
    "MINUTELY_LIMIT_REASON",
    "PAYLOAD_FAULTS",
    "RATE_FAULTS",
    "UNITS",
    "VARIABLES",
    "ArchiveQuery",
    "BadRequest",
    "FaultPlan",
    "SourceServer",
    "archive_objects",
    "encode_archive",
    "generate",
    "parse_query",
    "serve",
]
