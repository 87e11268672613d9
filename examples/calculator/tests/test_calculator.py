import pytest

from calculator import add, average, divide, multiply, safe_divide, subtract


def test_add():
    assert add(2, 3) == 5


def test_subtract():
    assert subtract(5, 3) == 2


def test_multiply():
    assert multiply(4, 3) == 12


def test_divide():
    assert divide(9, 3) == 3


def test_divide_by_zero_raises():
    with pytest.raises(ZeroDivisionError):
        divide(1, 0)


def test_safe_divide():
    assert safe_divide(10, 4) == 2.5


def test_safe_divide_by_zero_returns_none():
    assert safe_divide(1, 0) is None


def test_average_of_integers():
    assert average([2, 4, 6]) == 4


def test_average_keeps_the_fraction():
    assert average([1, 2]) == 1.5


def test_average_of_empty_list_is_none():
    assert average([]) is None
