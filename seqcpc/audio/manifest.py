"""Corpus manifests: the one format every data_prep script writes and every recipe reads.

A corpus folder holds
  manifest.tsv     one row per utterance: id, path, speaker, split, duration, sample_rate, channels,
                   num_samples, meta (JSON of per-utterance settings, may be empty); paths are relative to
                   the manifest's folder
  phones.txt       optional frame labels, the CPC reference format: "<id> <i> <i> ..." one phone index per
                   10 ms frame (LibriSpeech's converted_aligned_phones.txt is read as is)
  phones_vocab.txt optional, the phone symbol of each index, one per line
  audio_roots.txt  optional, folders outside this one that rows may point into (one per line)
Splits: "train" (pretraining and probe training), "test" (probe scoring: other utterances of the train
speakers), "heldout" (speakers unseen in pretraining, for few-shot evaluation).
Manifests are read as a stream, row by row, and a row that would be used wrongly is refused with its line: a
split that is none of SPLITS, an id that an earlier row has, an empty id, path or speaker, a negative or
non-finite duration, a negative sample count, a sample rate or channel count below 1. They are written
atomically (temporary file + rename).
"""
import csv
import math
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from seqcpc.errors import DataError
from seqcpc.files import atomic_write_text, existing_file, laid_out

SPLITS = ("train", "test", "heldout")


@dataclass
class Utterance:
    id: str
    path: str
    speaker: str
    split: str
    duration: float  # seconds
    sample_rate: int
    channels: int
    num_samples: int
    meta: str = ""

    def samples_at(self, sample_rate: int) -> int:
        """Length in samples once read at `sample_rate` (files at other rates are resampled on load)."""
        return round(self.num_samples * sample_rate / self.sample_rate)


FIELDS = [f.name for f in fields(Utterance)]


def write_manifest(path, rows: Iterable[Utterance]) -> int:
    lines = ["\t".join(FIELDS)]
    for row in rows:
        values = [str(v) for v in astuple(row)]
        if any(c in v for v in values for c in "\t\n\r"):
            raise DataError(f"manifest value of {row.id!r} contains a tab or line break")
        lines.append("\t".join(values))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return len(lines) - 1


def row_problem(row: Utterance) -> str | None:
    """What makes a manifest row unusable, or None."""
    if row.split not in SPLITS:
        return f"split {row.split!r} is not one of {', '.join(SPLITS)}"
    empty = [name for name in ("id", "path", "speaker") if not getattr(row, name).strip()]
    if empty:
        return f"the {' and '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty"
    if not (math.isfinite(row.duration) and row.duration >= 0):
        return f"duration {row.duration} is not a number of seconds >= 0"
    if row.num_samples < 0:
        return f"num_samples {row.num_samples} is negative"
    if row.sample_rate < 1 or row.channels < 1:
        return f"sample_rate {row.sample_rate} and channels {row.channels} must be >= 1"
    return None


def parse_row(path, line: int, values: list[str]) -> Utterance:
    """The row on `line` of the manifest `path`, checked; a DataError names the file and the line."""
    if len(values) != len(FIELDS):
        raise DataError(f"{path}:{line}: expected {len(FIELDS)} tab-separated fields, got {len(values)}")
    try:
        row = Utterance(values[0], values[1], values[2], values[3], float(values[4]), int(values[5]),
                        int(values[6]), int(values[7]), values[8])
    except ValueError as err:
        raise DataError(f"{path}:{line}: {err}") from err
    problem = row_problem(row)
    if problem:
        raise DataError(f"{path}:{line}: {problem}")
    return row


def read_manifest(path, splits: Iterable[str] | None = None) -> Iterator[Utterance]:
    """Stream the rows of a manifest, optionally only those of some splits; every row is checked (parse_row,
    ids unique), whatever its split."""
    path = existing_file(path, "manifest")
    wanted = set(splits) if splits is not None else None
    first_line = {}  # id -> the line that has it
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header != FIELDS:
            raise DataError(f"{path}: header {header} is not the seqcpc manifest header {FIELDS}")
        for line, values in enumerate(reader, start=2):
            row = parse_row(path, line, values)
            if first_line.setdefault(row.id, line) != line:
                raise DataError(f"{path}:{line}: id {row.id!r} is also on line {first_line[row.id]}; every "
                                f"utterance has one row")
            if wanted is None or row.split in wanted:
                yield row


def manifest_roots(manifest) -> list[Path]:
    """Folders a manifest may read audio from: its own, and those listed in audio_roots.txt beside it
    (written by data_prep when the audio stays where the user keeps it)."""
    folder = laid_out(manifest).parent
    listed = folder / "audio_roots.txt"
    extra = [laid_out(line) for line in listed.read_text().splitlines() if line.strip()] if listed.is_file() else []
    return [folder, *extra]


def resolve_path(manifest, path: str, roots: list[Path], allow_outside: bool = False) -> Path:
    """The audio file of a manifest row; refuses a path outside the manifest's roots unless allowed."""
    full = laid_out(roots[0] / path)
    if not allow_outside and not any(root == full or root in full.parents for root in roots):
        raise DataError(f"manifest {manifest}: {path!r} points outside the corpus folders "
                        f"{', '.join(map(str, roots))} (set data.allow_outside_paths=true to allow it)")
    return full


def write_phones(path, labels: dict[str, Iterable[int]]) -> None:
    atomic_write_text(path, "".join(f"{uid} {' '.join(map(str, idx))}\n" for uid, idx in labels.items()))


def read_phones(path) -> dict[str, np.ndarray]:
    """Frame labels per utterance id: int16 arrays, one phone index per 10 ms frame."""
    path, labels = existing_file(path, "phone label file"), {}
    with open(path) as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                ids = np.asarray(parts[1:], dtype=np.int64)
            except (ValueError, OverflowError) as err:
                raise DataError(f"{path}:{line_no}: phone indices must be integers ({err})") from err
            if len(ids) and (ids.min() < 0 or ids.max() > np.iinfo(np.int16).max):
                bad = ids.min() if ids.min() < 0 else ids.max()
                raise DataError(f"{path}:{line_no}: phone index {bad} is outside 0..{np.iinfo(np.int16).max}")
            labels[parts[0]] = ids.astype(np.int16)
    return labels


def read_vocab(path) -> list[str]:
    return Path(path).read_text().split()
