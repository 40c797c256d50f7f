"""The class count of a head trained on the data's labels (an online probe's, a supervised classifier's)."""
from seqcpc.errors import ConfigError


def class_count(given: int, found: int, found_in_words: str, key: str, least: int = 2) -> int:
    """`given`, or the `found` classes of the data (`found_in_words`, e.g. "3 speakers in ...") when it is 0;
    refuses a given count below what the data has, and a count below `least`."""
    if given and given < found:
        raise ConfigError(f"{key}={given} but the data has {found_in_words}; leave {key} at 0 to count them")
    if (given or found) < least:
        raise ConfigError(f"{key}: a head needs at least {least} classes, but the data has {found_in_words}")
    return given or found
