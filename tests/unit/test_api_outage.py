"""Taking a concurrency slot through a restart of the Prefect server: what counts as the server being away."""

import httpx
import pytest
from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError

from pipeline import concurrency


def acquisition_error(cause: BaseException) -> ConcurrencySlotAcquisitionError:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise ConcurrencySlotAcquisitionError("Unable to acquire concurrency slots on ['x']") from exc
    except ConcurrencySlotAcquisitionError as raised:
        return raised


def status_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:4200/api/v2/concurrency_limits/increment")
    return httpx.HTTPStatusError("status", request=request, response=httpx.Response(status, request=request))


def test_api_unreachable_is_true_for_a_refused_connection_under_the_acquisition_error():
    assert concurrency.api_unreachable(acquisition_error(httpx.ConnectError("All connection attempts failed")))


def test_api_unreachable_is_true_for_a_server_answering_503_while_it_starts():
    assert concurrency.api_unreachable(acquisition_error(status_error(503)))


def test_api_unreachable_is_false_for_what_the_server_answered():
    assert not concurrency.api_unreachable(acquisition_error(status_error(404)))
    assert not concurrency.api_unreachable(ConcurrencySlotAcquisitionError("must be created before acquiring slots"))
    assert not concurrency.api_unreachable(TimeoutError("waited 900 s"))


def test_through_api_outage_takes_again_until_the_server_answers(monkeypatch):
    monkeypatch.setattr(concurrency.time, "sleep", lambda _seconds: None)
    answers = [acquisition_error(httpx.ConnectError("refused")), acquisition_error(status_error(502)), "taken"]

    def take():
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert concurrency.through_api_outage(take, "a slot") == "taken"
    assert answers == []


def test_through_api_outage_gives_up_after_its_bound(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(concurrency.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(concurrency.time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    attempts = []

    def take():
        attempts.append(clock[0])
        raise acquisition_error(httpx.ConnectError("refused"))

    with pytest.raises(ConcurrencySlotAcquisitionError):
        concurrency.through_api_outage(take, "a slot", bound=30.0)
    assert attempts == [0.0, 1.0, 3.0, 7.0, 15.0, 25.0]


def test_through_api_outage_does_not_retry_an_answer():
    attempts = []

    def take():
        attempts.append(1)
        raise ConcurrencySlotAcquisitionError("Concurrency limits ['x'] must be created before acquiring slots")

    with pytest.raises(ConcurrencySlotAcquisitionError):
        concurrency.through_api_outage(take, "a slot")
    assert attempts == [1]
