"""The run folder: recognised before anything in it is replaced, and locked while a run uses it.

A folder is a seqcpc run folder when it holds `.seqcpc_run` (written when a run starts in it), or, for runs
from before that file existed, both `config.yaml` and `checkpoints/`. `--overwrite` removes only the entries a
run writes (RUN_ENTRIES) from such a folder and keeps anything else; any other non-empty folder (the current
folder, a parent holding other runs, a corpus) is refused with its path.

While a run trains, `.seqcpc_lock` holds its process id, host and process start time. A second run on the same
folder is refused with the holder's process id; a lock whose process is gone (a killed run) is stale and is
taken over with a message. A run that stops before its first step (a refusal, Ctrl-C) takes out what it
created, so the folder is as it was and the corrected command needs no --overwrite.
"""
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from seqcpc.errors import RunDirError
from seqcpc.files import laid_out

MARKER, LOCK = ".seqcpc_run", ".seqcpc_lock"
RUN_ENTRIES = (MARKER, "checkpoints", "config.yaml", "metrics.csv", "summary.json", "curves.png", "bad_files.txt",
               "probes", "tensorboard")


def is_run_folder(folder: Path) -> bool:
    return (folder / MARKER).is_file() or ((folder / "config.yaml").is_file() and (folder / "checkpoints").is_dir())


def process_start(pid: int) -> str | None:
    """The start time of a process in clock ticks since boot (Linux), to tell a reused process id apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def holder_alive(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # another machine's process cannot be checked from here: assume it runs
    pid = int(holder.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    started = process_start(pid)
    return started is None or holder.get("started") in (None, started)


class RunLock:
    """Holds `.seqcpc_lock` in a run folder from `acquire` to `release`."""

    def __init__(self, folder: Path, log=print):
        self.path, self.log, self.held = Path(folder) / LOCK, log, False

    def acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": process_start(os.getpid())}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    holder = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    holder = {}
                if holder and holder_alive(holder):
                    raise RunDirError(f"{self.path.parent} is in use by process {holder.get('pid')} on "
                                      f"{holder.get('host')}; wait for it to end or stop it (if it is gone, delete "
                                      f"{self.path})") from None
                self.log(f"note: taking over the stale lock of process {holder.get('pid', '?')}, which is gone")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return
        raise RunDirError(f"could not lock {self.path.parent}: another run took it at the same moment")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def check_run_dir(out: Path, resume: bool, overwrite: bool, reads: str = "") -> None:
    """Refuse, before anything is written, a run folder that cannot be used as asked; `reads` is a file the run
    starts from (train.init_from), which --overwrite must not delete."""
    if str(out) in ("", "."):
        raise RunDirError("train.out_dir must name a folder for this run, not the current folder")
    if out.exists() and not out.is_dir():
        raise RunDirError(f"train.out_dir {out} is a file, not a folder")
    ckpt = out / "checkpoints" / "last.ckpt"
    if resume and not ckpt.is_file():
        raise RunDirError(f"--resume: no checkpoint at {ckpt}")
    if resume or not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise RunDirError(f"{out} already holds a run; pass --resume to continue it or --overwrite to replace it")
    if not is_run_folder(out):
        raise RunDirError(f"--overwrite refused: {out} is not a seqcpc run folder (it has no {MARKER}), so nothing "
                          f"in it is removed; choose a new or empty train.out_dir")
    if reads and removed_by_overwrite(out, reads):
        raise RunDirError(f"--overwrite refused: train.init_from={reads} is in {out}, which --overwrite empties "
                          f"before the run starts from it; copy it out of the run folder first and set "
                          f"train.init_from to the copy")


def removed_by_overwrite(out: Path, path) -> bool:
    """Whether `path`, as laid out or where its links lead, is (inside) an entry that --overwrite removes."""
    for where in (laid_out, lambda p: Path(p).resolve()):
        if any(where(path).is_relative_to(where(out / name)) for name in RUN_ENTRIES):
            return True
    return False


def remove_entry(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def clear_run(out: Path, log=print) -> None:
    """Remove what a run writes from a recognised run folder; everything else stays."""
    for name in RUN_ENTRIES:
        remove_entry(out / name)
    kept = sorted(p.name for p in out.iterdir() if p.name != LOCK)
    if kept:
        log(f"--overwrite: kept {len(kept)} entries of {out} that a run does not write: {', '.join(kept[:5])}")


@dataclass
class RunFolder:
    """The run folder, locked by this run until `close`. `undo` takes out what the run created, for a run that
    stops before its first step: the entries a run writes that the folder did not hold (`held`, after --overwrite
    cleared it) and the folders made for it (`made`, deepest first); never anything that was there before."""
    out: Path
    lock: RunLock
    held: set
    made: list

    def close(self) -> None:
        self.lock.release()

    def undo(self) -> None:
        for name in RUN_ENTRIES:
            if name not in self.held:
                remove_entry(self.out / name)
        self.close()
        for folder in self.made:
            if any(folder.iterdir()):
                break
            folder.rmdir()


def open_run_dir(out: Path, resume: bool, overwrite: bool, log=print) -> RunFolder:
    """Check the folder, lock it, clear it for --overwrite and mark it as a run folder (rank 0 only)."""
    check_run_dir(out, resume, overwrite)
    made = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    folder = RunFolder(out, RunLock(out, log), {p.name for p in out.iterdir()}, made)
    folder.lock.acquire()
    try:
        if overwrite and not resume:
            clear_run(out, log)
        folder.held = {p.name for p in out.iterdir()}
        (out / "checkpoints").mkdir(exist_ok=True)
        (out / MARKER).write_text(json.dumps({"kind": "seqcpc run"}) + "\n")
    except BaseException:
        folder.undo()
        raise
    return folder
