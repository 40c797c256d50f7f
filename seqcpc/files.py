"""Files written safely, and inputs recognised when they have not changed.

Every file seqcpc writes for others to read (manifests, data sets, checkpoints, reports) goes through
`replace_synced`: written to a temporary file beside the target, flushed to disk, renamed over the target, and
the folder synced, so a crash at any moment leaves the old file or the new one, never a torn one; a failed
write (a full disk) leaves the old one and is raised as an OSError that names the file.
`fingerprint` hashes options and input files (name, size, modification time): equal means nothing changed,
which is how data preparation skips work it has done. `claim_output` is the one rule every data_prep writer
applies to its output folder before writing in it; `name_problem` says why a file name found in an input folder
cannot be stored in a manifest or a report.
"""
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from seqcpc.errors import DataError

PREP_MARKER = ".seqcpc_prep"  # in a prepared data folder: the data_prep writer that claimed it


def laid_out(path) -> Path:
    """The absolute path as the user laid it out: `..` and `.` folded, symbolic links kept (not followed), so a
    corpus of links is read through its links everywhere: in data preparation, training, probes, extraction."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def fsync_dir(folder) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_synced(tmp, path) -> None:
    """Flush the finished temporary file `tmp` to disk and rename it over `path`."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


def write_failure(path, err: OSError, what: str = "file") -> str:
    """What to say when writing `path` failed with `err` (a full disk names no file, or the temporary one)."""
    kept = f"the previous {what} is kept" if Path(path).exists() else f"no earlier {what} exists"
    return f"could not write {what} {path} ({err.strerror or err}); {kept}"


@contextmanager
def named_write(path, what: str = "file"):
    """Raise an OSError met while writing `path` again, naming `path` and whether an earlier one is kept."""
    try:
        yield
    except OSError as err:
        message = write_failure(path, err, what)
        raise (OSError(err.errno, message) if err.errno else OSError(message)) from err


def atomic_write(path, write: Callable, suffix: str = ".tmp") -> None:
    """`write(tmp_path)` writes the content; then it replaces `path` atomically. A failure removes the
    temporary file and leaves `path` as it was; an OSError (e.g. a full disk) is raised again naming `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    with named_write(path):
        try:
            write(tmp)
            replace_synced(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def atomic_write_text(path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_save_npy(path, array: np.ndarray) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)

    atomic_write(path, write)


def fingerprint(options: dict, files: Iterable[tuple[str, Path]]) -> str:
    """A hash of the options and of each (name, file): the name as given, the file's size and mtime."""
    h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for name, path in sorted(files, key=lambda f: f[0]):
        st = Path(path).stat() if Path(path).exists() else None
        h.update(f"{name}\t{st and st.st_size}\t{st and st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def stable_split(uid: str, test_fraction: float) -> str:
    """"test" or "train" by a hash of the id alone, so adding items never moves old ones."""
    bucket = int(hashlib.sha1(uid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


def existing_file(path, what: str) -> Path:
    """`path` when it is a file; else a DataError saying that the `what` (e.g. "manifest") is missing or is a
    folder."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    return path


def existing_folder(path, what: str) -> Path:
    """`path` when it is a folder; else a DataError saying that the `what` is missing or is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataError(f"{what} {path} is a file, not a folder")
    if not path.is_dir():
        raise DataError(f"{what} {path} does not exist")
    return path


def name_problem(name: str) -> str | None:
    """Why a file name cannot be one field of a manifest row or a report line (a tab, a line break, bytes that
    are not UTF-8), or None."""
    if any(c in name for c in "\t\n\r"):
        return "its name holds a tab or line break"
    try:
        name.encode()
    except UnicodeEncodeError:
        return "its name is not valid UTF-8"
    return None


def unusable_name(path: Path, root: Path) -> str | None:
    """"path: reason" (the path quoted so that the line can be written) when the path of a file or folder under
    `root` has a name_problem, else None."""
    problem = name_problem(str(path.relative_to(root)))
    return f"{str(path)!r}: {problem}, which a manifest or report cannot hold; rename it" if problem else None


def foreign_entries(out: Path, entries: Iterable[str]) -> list[str]:
    """The entries of `out` that are none of `entries`, the marker, or what a killed write of one leaves
    (atomic_write's NAME.tmp, a SplitWriter's NAME.raw)."""
    ours = {*entries, PREP_MARKER}
    return sorted(p.name for p in out.iterdir() if p.name.removesuffix(".tmp").removesuffix(".raw") not in ours)


def claim_output(out, kind: str, entries: Iterable[str], legacy_kind: str | None = None) -> Path:
    """Check, before anything is written, that the data_prep writer `kind` (e.g. "data_prep.glyphs") may write
    the folder `out`, in which it writes only `entries`; then create it and mark it as `kind`'s. Refused: an
    empty path or the current folder, a file, a folder another writer prepared (its marker, or `legacy_kind`
    for a folder prepared before markers existed), and an unmarked folder holding other files. A folder `kind`
    prepared before is accepted: a rerun skips or redoes its own preparation."""
    if not str(out).strip() or laid_out(out) == laid_out(Path.cwd()):
        raise DataError("--out must name a folder for the prepared data, not the current folder")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file, not a folder")
    marker = out / PREP_MARKER
    claimed = marker.is_file() and any(p != marker for p in out.iterdir())  # a marker alone claims nothing
    owner = marker.read_text().strip() if claimed else legacy_kind
    if owner not in (None, kind):
        raise DataError(f"{out} holds data prepared by {owner}, which {kind} would replace; choose a new or empty "
                        f"--out folder (or delete {out} first)")
    others = foreign_entries(out, entries) if out.is_dir() and owner is None else []
    if others:
        listed = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise DataError(f"{out} holds files that {kind} does not write ({listed}); choose a new or empty --out "
                        f"folder")
    out.mkdir(parents=True, exist_ok=True)
    if not claimed:
        atomic_write_text(marker, kind + "\n")
    return out
