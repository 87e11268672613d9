import pytest

from stats import median


def test_even_length_averages_the_middle_pair():
    assert median([4, 1, 3, 2]) == 2.5


def test_input_is_not_reordered():
    values = [3, 1, 2]
    median(values)
    assert values == [3, 1, 2]


def test_empty_input_is_an_error():
    with pytest.raises(ValueError):
        median([])
