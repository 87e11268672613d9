"""Small statistics helpers."""


def median(values):
    """The median of a non-empty list of numbers."""
    values.sort()
    return values[len(values) // 2]
