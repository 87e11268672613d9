"""Small statistics helpers."""


def median(values):
    """The median of a non-empty list of numbers."""
    values.sort()
    mid = len(values) // 2
    if len(values) % 2 == 0:
        return (values[mid - 1] + values[mid]) / 2
    return values[mid]
