from pipeline.demo import _number


def test_number_shows_a_missing_value_as_a_dash_in_the_same_width():
    assert _number(12.345, 6) == "  12.3"
    assert _number(None, 6) == "     -"
    assert _number(0.0, 7) == "    0.0"
