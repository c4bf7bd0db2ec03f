"""A helper module beside the functions: the code directory is imported as a whole."""


def fahrenheit(celsius: float) -> float:
    """Degrees Celsius in Fahrenheit, to one decimal."""
    return round(celsius * 9 / 5 + 32, 1)
