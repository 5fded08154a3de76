from pipeline.lookups import SeenRun


def test_seen_run_data_keeps_the_fields_the_server_or_the_failure_gave():
    known = SeenRun(id="r1", name="quiet-fox", state="Completed", url=None)

    assert known.data() == {"id": "r1", "name": "quiet-fox", "state": "Completed", "url": None}
    assert SeenRun.unknown("ConnectError").data() == {"state": "unknown", "error": "ConnectError"}
