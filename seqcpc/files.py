"""Files written safely, and inputs recognised when they have not changed.

Every file seqcpc writes for others to read (manifests, data sets, checkpoints, reports) goes through
`replace_synced`: written to a temporary file beside the target, flushed to disk, renamed over the target, and
the folder synced, so a crash at any moment leaves the old file or the new one, never a torn one.
`fingerprint` hashes options and input files (name, size, modification time): equal means nothing changed,
which is how data preparation skips work it has done.
"""
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np


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


def atomic_write(path, write: Callable, suffix: str = ".tmp") -> None:
    """`write(tmp_path)` writes the content; then it replaces `path` atomically. A failure removes the
    temporary file and leaves `path` as it was."""
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
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
