"""Corpus manifests: the one format every data_prep script writes and every recipe reads.

A corpus folder holds
  manifest.tsv     one row per utterance: id, path, speaker, split, duration, sample_rate, channels,
                   num_samples, meta (JSON of per-utterance settings, may be empty); paths are relative to
                   the manifest's folder
  phones.txt       optional frame labels, the CPC reference format: "<id> <i> <i> ..." one phone index per
                   10 ms frame (LibriSpeech's converted_aligned_phones.txt is read as is)
  phones_vocab.txt optional, the phone symbol of each index, one per line
  audio_roots.txt  optional, folders outside this one that rows may point into (one per line)
A row is a whole file, or a segment of a longer file (data_prep.librilight cuts hour-long recordings at their
voice activity without copying them): a segment's meta holds {"start": S}, its first sample in the file at the
file's own rate, and num_samples / duration give the segment's length. Every reader of manifest audio takes
the span from the row, `read_audio(path, *row.span_at(rate), sample_rate=rate)` (or row.start_at(rate) and
row.samples_at(rate) for windows inside it), so a whole-file row and a segment row are read alike.
Splits: "train" (pretraining and probe training), "test" (probe scoring: other utterances of the train
speakers), "heldout" (speakers unseen in pretraining, for few-shot evaluation).
Manifests are read as a stream, row by row, and a row that would be used wrongly is refused with its line: a
split that is none of SPLITS, an id that an earlier row has, an empty id, path or speaker, a negative or
non-finite duration, a negative sample count, a sample rate or channel count below 1, a meta that is not a
JSON object, a start that is not a whole number >= 0. A span past its file's end is refused where the file's
length is read (span_problem). They are written atomically (temporary file + rename).
"""
import csv
import json
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

    @property
    def start(self) -> int:
        """First sample of the utterance in its file, at the file's rate: meta's "start" for a segment, else 0."""
        return json.loads(self.meta).get("start", 0) if self.meta else 0

    def start_at(self, sample_rate: int) -> int:
        """First sample of the utterance in its file once read at `sample_rate`."""
        return round(self.start * sample_rate / self.sample_rate)

    def samples_at(self, sample_rate: int) -> int:
        """Length in samples once read at `sample_rate` (files at other rates are resampled on load): the span
        [start, start + num_samples) of the file, with both ends rounded to the new rate's grid."""
        end = round((self.start + self.num_samples) * sample_rate / self.sample_rate)
        return end - self.start_at(sample_rate)

    def span_at(self, sample_rate: int) -> tuple[int, int]:
        """(start, samples) of the utterance in its file at `sample_rate`: read_audio's span for the whole row."""
        return self.start_at(sample_rate), self.samples_at(sample_rate)

    def span_problem(self, frames: int) -> str | None:
        """Why the row does not fit its file of `frames` samples (at the file's rate), or None."""
        if self.start + self.num_samples > frames:
            return (f"samples {self.start}..{self.start + self.num_samples} of {self.id!r} run past the end of its "
                    f"file, which holds {frames}")
        return None


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


def meta_problem(meta: str) -> str | None:
    """What makes a row's meta unusable (not a JSON object; a start that is not a whole number >= 0), or None."""
    if not meta:
        return None
    try:
        value = json.loads(meta)
    except ValueError:
        return f"meta {meta!r} is not JSON"
    if not isinstance(value, dict):
        return f"meta {meta!r} is not a JSON object"
    start = value.get("start", 0)
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        return f"meta start {start!r} is not a whole number of samples >= 0"
    return None


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
    return meta_problem(row.meta)


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
