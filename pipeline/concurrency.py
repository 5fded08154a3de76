"""The Prefect global concurrency limits the pipeline's runs take slots from, created where they are missing."""

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

# The public archive allows fewer than 600 calls a minute: one slot per call, 10 freed a second.
RATE_LIMIT_SLOTS = 600
RATE_LIMIT_DECAY_PER_SECOND = 10.0


def ensure_rate_limit(name: str, slots: int, decay_per_second: float) -> str:
    """Create or update the global concurrency limit that paces calls to the source API."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, slots, slot_decay_per_second=decay_per_second)
    return f"rate limit {name}: {slots} slots, {decay_per_second:g} freed per second"


def ensure_limit_exists(name: str, slots: int, decay_per_second: float | None = None) -> bool:
    """Create the limit `name` if the server lacks it (returns True then); an existing one keeps its values.

    Prefect skips a missing limit with a warning: a run against a fresh server (a CLI run's own)
    would call the API unpaced.
    """
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return False
        except ObjectNotFound:
            client.upsert_global_concurrency_limit_by_name(name, slots, slot_decay_per_second=decay_per_second)
            return True
