"""A small calculator module with two intentional bugs for promptloop's example."""


def add(a, b):
    return a + b


def subtract(a, b):
    return a - b


def multiply(a, b):
    return a * b


def divide(a, b):
    return a / b


def safe_divide(a, b):
    """Divide a by b; return None when there is no valid result (b == 0)."""
    if b == 0:
        return 0  # bug: 0 looks like a valid result
    return a / b


def average(numbers):
    """The arithmetic mean of a non-empty list; None for an empty list."""
    if not numbers:
        return None
    return sum(numbers) // len(numbers)  # bug: floor division drops the fraction
