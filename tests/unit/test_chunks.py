from datetime import date

from pipeline.chunks import checksums_changed
from pipeline.ledger import DayStatus
from pipeline.load import DayLoad


def test_checksums_changed_counts_only_days_the_ledger_held_with_other_content():
    ledger = {
        date(2024, 3, 1): DayStatus("succeeded", True, True, checksum="same"),
        date(2024, 3, 2): DayStatus("succeeded", True, True, checksum="old"),
    }
    loads = [
        DayLoad(date(2024, 3, 1), 24, "same"),
        DayLoad(date(2024, 3, 2), 24, "new"),
        DayLoad(date(2024, 3, 3), 24, "first"),  # never loaded before: new, not changed
    ]

    assert checksums_changed(ledger, loads) == 1
