"""Errors that the command line reports as one clear line instead of a traceback."""


class SeqcpcError(Exception):
    pass


class ConfigError(SeqcpcError, ValueError):
    """A bad config key, type or value."""


class DataError(SeqcpcError):
    """A manifest, label file, data set or input file that cannot be used."""


class RunDirError(SeqcpcError):
    """The run folder holds another run, or has no checkpoint to resume."""


class TrainingError(SeqcpcError):
    """Training cannot go on (e.g. too many non-finite steps)."""


class CheckpointError(SeqcpcError):
    """A checkpoint file that cannot be read as a seqcpc checkpoint."""
