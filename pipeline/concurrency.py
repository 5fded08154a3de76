"""The Prefect global concurrency limits the pipeline's runs take slots from, created where they are missing."""

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import httpx
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency, rate_limit
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger

T = TypeVar("T")

# The public archive allows fewer than 600 calls a minute: one slot per call, 10 freed a second.
RATE_LIMIT_SLOTS = 600
RATE_LIMIT_DECAY_PER_SECOND = 10.0
# How long taking a slot waits for the Prefect server to answer again (a restart, an upgrade) before
# the run fails: a server restart takes seconds to a minute; a server gone for longer is an outage.
API_OUTAGE_SECONDS = 180.0
# HTTP statuses of a server that is starting or stopping, or of a proxy in front of one.
UNAVAILABLE = {502, 503, 504}


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


def api_unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the Prefect server did not answer, rather than what it answered."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx.TransportError):
            return True
        if isinstance(current, httpx.HTTPStatusError) and current.response.status_code in UNAVAILABLE:
            return True
        current = current.__cause__ or current.__context__
    return False


def through_api_outage(take: Callable[[], T], what: str, bound: float = API_OUTAGE_SECONDS) -> T:
    """`take()`, again every few seconds while the Prefect server cannot be reached, for at most `bound` s.

    Prefect's client retries a connection it has made before, but a slot is taken on a connection of its
    own: without this, a server restart fails every run that asks for a slot while it is down.
    """
    deadline = time.monotonic() + bound
    delay = 1.0
    while True:
        try:
            return take()
        except Exception as exc:
            if not api_unreachable(exc) or time.monotonic() + delay > deadline:
                raise
            get_logger("pipeline.concurrency").warning(
                "the Prefect server did not answer taking %s; trying again in %.0f s", what, delay
            )
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def take_rate_limit(name: str, occupy: int, timeout_seconds: float | None) -> None:
    """Slots of the rate limit `name` (which must exist), through a restart of the Prefect server."""
    through_api_outage(
        lambda: rate_limit(name, occupy=occupy, timeout_seconds=timeout_seconds, strict=True),
        f"{occupy} slots of {name}",
    )


@contextmanager
def holding_slot(name: str) -> Iterator[None]:
    """One slot of the limit `name` (which must exist) while the block runs; taken through a server restart.

    A lease renewal missed while the server restarts does not end the block: the work under it goes on,
    and the slot is freed when the block ends (or when its lease runs out, should this process die).
    """
    held = concurrency(name, occupy=1, strict=True, raise_on_lease_renewal_failure=False)
    through_api_outage(held.__enter__, f"a slot of {name}")
    try:
        yield
    except BaseException:
        if not held.__exit__(*sys.exc_info()):
            raise
    else:
        held.__exit__(None, None, None)
