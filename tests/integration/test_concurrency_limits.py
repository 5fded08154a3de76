"""Every path that calls the source API is paced: a server without the rate limit gets it."""

from datetime import date
from uuid import uuid4

from prefect.client.orchestration import get_client

from flows.daily import daily_weather
from pipeline.concurrency import RATE_LIMIT_DECAY_PER_SECOND, RATE_LIMIT_SLOTS


def test_a_run_against_a_server_without_the_rate_limit_creates_it_and_takes_its_slots(
    pipeline_env, db, source, monkeypatch
):
    name = f"weather-test-missing-limit-{uuid4().hex[:8]}"
    monkeypatch.setenv("PIPELINE_SOURCE_RATE_LIMIT", name)

    state = daily_weather(logical_date=date(2024, 3, 9), lookback_days=0, return_state=True)
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)

    # Slots are taken strictly: had the limit still been missing, the fetch would have failed.
    assert state.is_completed(), str(state.result(raise_on_failure=False))
    assert (limit.limit, limit.slot_decay_per_second) == (RATE_LIMIT_SLOTS, RATE_LIMIT_DECAY_PER_SECOND)
    assert source.requests == 3  # five locations in requests of two, each through the limit
