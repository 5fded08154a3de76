from datetime import date

from pipeline.summary import RunSummary, WindowSummary
from pipeline.summary import TestCounts as DbtTestCounts
from pipeline.window import Window


def test_test_counts_read_as_counts_per_status():
    assert str(DbtTestCounts(counts={"pass": 44})) == "44 pass"
    assert str(DbtTestCounts(counts={"warn": 1, "pass": 42, "error": 1})) == "1 error, 42 pass, 1 warn"
    assert str(DbtTestCounts(counts={})) == "none"


def test_run_summary_timings_name_each_step_in_seconds():
    window = WindowSummary.of(Window(date(2024, 3, 9), date(2024, 3, 9)))
    summary = RunSummary(kind="daily", window=window, seconds={"extract": 0.118, "load": 0.2, "dbt": 3.12})

    assert summary.timings() == "extract 0.118 s, load 0.200 s, dbt 3.120 s"
