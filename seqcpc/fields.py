"""Config fields with their checks: choices, numeric ranges and paths, as dataclass field metadata.

Every config dataclass (the loader's sections, each modality's and each objective's) declares its fields with
these, so the loader (seqcpc/config.py) checks them all alike and the docs list them from the same metadata.
"""
import os
from dataclasses import field

from seqcpc.errors import ConfigError


def choice(default, choices):
    return field(default=default, metadata={"choices": tuple(choices)})


def number(default, *, min=None, above=None, max=None):
    """A numeric field (or list of numbers) with its valid range: >= min, > above, <= max."""
    bounds = {k: v for k, v in (("min", min), ("above", above), ("max", max)) if v is not None}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=bounds)
    return field(default=default, metadata=bounds)


def path(default: str = ""):
    """A file or folder field: `~` and $VARIABLES in it are expanded when the config is read."""
    return field(default=default, metadata={"path": True})


def expand_path(key: str, value: str) -> str:
    expanded = os.path.expanduser(os.path.expandvars(value))
    if "$" in expanded:
        raise ConfigError(f"{key}={value}: the environment variable in it is not set")
    return expanded


def check_range(key: str, value, meta) -> None:
    """Refuse a value (each item of a list) outside the field's range, naming the key and the range."""
    for v in value if isinstance(value, list) else [value]:
        if v is None or not isinstance(v, (int, float)):
            continue
        low, above, high = meta.get("min"), meta.get("above"), meta.get("max")
        if (low is not None and v < low) or (above is not None and v <= above) or (high is not None and v > high):
            allowed = " and ".join(s for s in (low is not None and f">= {low}", above is not None and f"> {above}",
                                               high is not None and f"<= {high}") if s)
            raise ConfigError(f"{key}={value}: must be {allowed}" + (" (each item)" if isinstance(value, list) else ""))
