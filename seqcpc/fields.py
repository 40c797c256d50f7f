"""Config fields with their checks: choices, numeric ranges and paths, as dataclass field metadata.

Every config dataclass (the loader's sections, each modality's and each objective's) declares its fields with
these, so the loader (seqcpc/config.py) checks them all alike and the docs list them from the same metadata.
Every number, in every field and list item, must be finite: NaN and infinities are refused whatever the range.
"""
import math
import operator
import os
from dataclasses import field

from seqcpc.errors import ConfigError

BOUNDS = (("min", ">=", operator.ge), ("above", ">", operator.gt), ("below", "<", operator.lt),
          ("max", "<=", operator.le))


def choice(default, choices):
    return field(default=default, metadata={"choices": tuple(choices)})


def number(default, *, min=None, above=None, below=None, max=None, why=""):
    """A numeric field (or list of numbers) with its valid range: >= min, > above, < below, <= max; `why` says
    what goes wrong outside it, where that is not plain."""
    given = {"min": min, "above": above, "below": below, "max": max, "why": why or None}
    bounds = {k: v for k, v in given.items() if v is not None}
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
    """Refuse a value (each item of a list) that is not finite or lies outside the field's range, naming the key
    and the range."""
    each = " (each item)" if isinstance(value, list) else ""
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if not math.isfinite(v):
            raise ConfigError(f"{key}={value}: must be a finite number{each}, not {v}")
        if not all(holds(v, meta[name]) for name, _, holds in BOUNDS if name in meta):
            allowed = " and ".join(f"{sign} {meta[name]}" for name, sign, _ in BOUNDS if name in meta)
            why = f" ({meta['why']})" if "why" in meta else ""
            raise ConfigError(f"{key}={value}: must be {allowed}{each}{why}")


def refuse_idle(section, prefix: str, rules: dict) -> None:
    """Refuse an option set away from its default while the setting that makes it matter is off. `rules` maps a
    dotted field of `section` (a config dataclass whose defaults are those of the run) to (whether it matters,
    the setting that would make it matter)."""
    defaults = type(section)()
    for name, (matters, setting) in rules.items():
        value = operator.attrgetter(name)(section)
        if not matters and value != operator.attrgetter(name)(defaults):
            raise ConfigError(f"{prefix}.{name}={value} does nothing without {setting}; set that, or leave "
                              f"{prefix}.{name} at its default")
