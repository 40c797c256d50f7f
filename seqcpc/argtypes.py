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


def bounded(parse, ok, refusal: str, name: str):
    """An argparse type: `parse(text)`, refused with "<text> <refusal>" unless `ok(value)`."""
    def parse_bounded(text: str):
        value = parse(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text} {refusal}")
        return value

    parse_bounded.__name__ = name  # argparse names the type in its message for text that does not parse
    return parse_bounded


fraction = bounded(finite, lambda v: 0 < v < 1, "is not between 0 and 1 (exclusive)", "fraction")
count = bounded(int, lambda v: v >= 0, "is negative", "count")  # a whole number >= 0
nonnegative = bounded(finite, lambda v: v >= 0, "is not a number >= 0", "nonnegative")
ratio = bounded(finite, lambda v: v >= 1, "is not a number >= 1", "ratio")  # a larger to a smaller quantity
positive = bounded(int, lambda v: v >= 1, "is not a whole number >= 1", "positive")
