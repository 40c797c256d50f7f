"""Argument types for command lines (seqcpc's, data_prep's): each parses a string or refuses it with a reason,
which argparse reports in one line with exit code 2. Numbers must be finite: NaN and infinity are refused."""
import argparse
import math


def finite(text: str) -> float:
    """A float, refused when NaN or infinite."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    value = finite(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1 (exclusive)")
    return value


def count(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def nonnegative(text: str) -> float:
    """An argparse type: a number >= 0."""
    value = finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number >= 0")
    return value


def ratio(text: str) -> float:
    """An argparse type: a number >= 1 (a ratio of a larger to a smaller quantity)."""
    value = finite(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a number >= 1")
    return value


def positive(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number >= 1")
    return value
