import pytest

from pipeline.heartbeat import ping, ping_url


@pytest.mark.parametrize(
    ("url", "failed", "expected"),
    [
        ("https://hc-ping.com/5b4f-uuid", False, "https://hc-ping.com/5b4f-uuid"),
        ("https://hc-ping.com/5b4f-uuid", True, "https://hc-ping.com/5b4f-uuid/fail"),
        ("https://hc-ping.com/5b4f-uuid/", True, "https://hc-ping.com/5b4f-uuid/fail"),
        ("https://cronitor.link/p/KEY/daily?env=prod", True, "https://cronitor.link/p/KEY/daily/fail?env=prod"),
    ],
)
def test_ping_url_appends_fail_to_the_path_on_failure_only(url, failed, expected):
    assert ping_url(url, failed) == expected


def test_ping_without_a_url_sends_nothing():
    assert ping(None, failed=True) is False
