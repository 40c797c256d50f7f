"""Errors that the command line reports as one clear line instead of a traceback, and the one place that does
the reporting for every entry point (`seqcpc`, data_prep scripts, recipes)."""
import os
import sys


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


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C; the message says where. `resumable`: a checkpoint holds where it stopped, so
    --resume goes on from there. A KeyboardInterrupt, so that code which does not report it stops as at Ctrl-C."""

    def __init__(self, message: str, resumable: bool):
        super().__init__(message)
        self.resumable = resumable


def report_errors(run, prog: str, debug: bool = False) -> int:
    """Call `run()`; a user's mistake (a SeqcpcError, or a file that is missing, unreadable or cannot be
    written) ends with one line naming it and exit code 1; Ctrl-C with one line saying where it stopped and
    exit code 130, as in a shell. `debug` or SEQCPC_DEBUG=1 shows the traceback instead, for bug reports."""
    debug = debug or os.environ.get("SEQCPC_DEBUG", "") not in ("", "0")
    try:
        run()
    except KeyboardInterrupt as err:
        if debug:
            raise
        print(f"{prog}: {str(err) or 'interrupted'}", file=sys.stderr)
        return 130
    except (SeqcpcError, OSError) as err:
        if debug:
            raise
        # an error raised in a DataLoader worker arrives with the worker's traceback in its message: keep
        # only the error itself
        message = str(err).strip().splitlines()[-1] if "Original Traceback" in str(err) else str(err)
        print(f"{prog}: error: {message} (run with SEQCPC_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    return 0
