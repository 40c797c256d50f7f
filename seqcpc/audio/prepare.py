"""Shared steps of data preparation: check audio files, assign splits, write the manifest once.

The data_prep/ scripts find a corpus's files and labels; this module turns them into a manifest. It is
idempotent: a fingerprint of the inputs and options is stored beside the manifest, and a second run with
the same inputs does nothing. A file that cannot be used (unreadable, or named so that a manifest row cannot
hold it) is skipped and listed in `prep_report.txt` (on_error="skip"), or stops the preparation with its name
(on_error="stop"); nothing already written is lost either way, since the manifest is written last and
atomically. The output folder is claimed first (seqcpc.files.claim_output): never the current folder, nor one
holding other files or another preparation.
"""
import argparse
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seqcpc.audio.io import usable_audio_info
from seqcpc.audio.manifest import Utterance, write_manifest, write_phones
from seqcpc.argtypes import count, fraction
from seqcpc.errors import DataError
from seqcpc.files import atomic_write_text, claim_output, fingerprint, laid_out, stable_split

# what a preparation writes in its folder (besides the audio, when the audio lies inside it)
PREP_FILES = ("manifest.tsv", "prep_fingerprint.txt", "prep_report.txt", "audio_roots.txt", "phones.txt",
              "phones_report.txt")


@dataclass
class Source:
    """One audio file found by a data_prep script."""
    id: str
    path: Path
    speaker: str
    split: str | None = None  # None: assigned by assign_splits
    meta: str = ""
    inputs: tuple[Path, ...] = ()  # other files its rows are made from (e.g. a .json of voice activity)


@dataclass
class Segment:
    """One manifest row cut from a source file by a data_prep script's `cut` (see prepare)."""
    id: str
    start: int  # first sample, at the file's rate
    num_samples: int
    split: str | None = None  # None: the source's


@dataclass
class PrepResult:
    manifest: Path
    written: bool  # False when the manifest was already up to date
    rows: list[Utterance] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: reason"


def prep_parser(doc: str) -> argparse.ArgumentParser:
    """The options every data_prep script for a speaker corpus shares."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="the corpus folder")
    parser.add_argument("--out", required=True, help="folder for manifest.tsv and reports")
    parser.add_argument("--test-fraction", type=fraction, default=0.2, help="share of each speaker's utterances")
    parser.add_argument("--heldout-speakers", type=count, default=0, help="whole speakers kept for few-shot tests")
    parser.add_argument("--on-error", choices=["skip", "stop"], default="skip", help="at an unreadable file")
    return parser


def hold_out_speakers(sources: list[Source], count: int) -> None:
    """Move every utterance of `count` speakers (chosen by a hash of their names) to the "heldout" split."""
    speakers = sorted({s.speaker for s in sources}, key=lambda sp: hashlib.sha1(sp.encode()).hexdigest())
    if count >= len(speakers) and count > 0:
        raise DataError(f"--heldout-speakers {count}: the corpus has {len(speakers)} speakers, and at least one "
                        f"must stay for pretraining and the probes")
    heldout = set(speakers[:count])
    for s in sources:
        if s.speaker in heldout:
            s.split = "heldout"


def assign_splits(sources: list[Source], test_fraction: float) -> None:
    """Give each source without a split "train" or "test" by a hash of its id."""
    for s in sources:
        if s.split is None:
            s.split = stable_split(s.id, test_fraction)


def refuse_duplicate_ids(sources: list[Source]) -> None:
    """Two files under one utterance id (names that differ only in extension, or collide once sanitised) would
    be merged into one manifest row: refuse them, naming the files."""
    by_id = {}
    for s in sources:
        by_id.setdefault(s.id, []).append(str(s.path))
    clashes = {uid: paths for uid, paths in by_id.items() if len(paths) > 1}
    if clashes:
        uid, paths = next(iter(clashes.items()))
        raise DataError(f"{len(clashes)} utterance ids name more than one file, e.g. {uid!r}: {', '.join(paths)}; "
                        f"rename the files so that their names differ beyond the extension and spaces")


def claim(out_dir, kind: str, audio_root) -> Path:
    """claim_output for a manifest folder; audio lying inside it may stay there."""
    entries, root, folder = list(PREP_FILES), laid_out(audio_root or out_dir), laid_out(out_dir)
    if folder in root.parents:
        entries.append(root.relative_to(folder).parts[0])
    return claim_output(out_dir, kind, entries)


def prepare(sources: list[Source], out_dir, options: dict, kind: str, on_error: str = "skip", audio_root=None,
            frame_labels: dict | None = None, unusable: Sequence[str] = (),
            cut: Callable[[Source, int, int], list[Segment]] | None = None, log=print) -> PrepResult:
    """Check every source file and write out_dir/manifest.tsv (and phones.txt from `frame_labels`, read and
    checked before anything is written) as the data_prep writer `kind`. `unusable` lists files the writer found
    but could not make sources of ("path: reason"), reported with the unreadable ones. Each source is one row,
    or with `cut(source, sample_rate, frames)` the rows of its segments (meta {"start": ...}, see
    seqcpc.audio.manifest); a DataError from `cut` is a file that cannot be used. Paths inside out_dir are
    stored relative to it; files elsewhere must lie under `audio_root`, which is then listed in audio_roots.txt.
    The fingerprint is written last, so a preparation that stops half-way is redone by the next run."""
    if on_error not in ("skip", "stop"):
        raise ValueError(f"on_error must be 'skip' or 'stop', not {on_error!r}")
    out_dir = Path(out_dir)
    manifest, stamp = out_dir / "manifest.tsv", out_dir / "prep_fingerprint.txt"
    if not sources and not unusable:
        raise DataError(f"no audio files found for {out_dir}")
    if unusable and on_error == "stop":
        raise DataError(f"{unusable[0]}; nothing was written (--on-error skip skips such files)")
    refuse_duplicate_ids(sources)
    # unusable files enter the key only when there are some: the corpora prepared before keep their key
    key = fingerprint(options | ({"unusable": list(unusable)} if unusable else {}),
                      [(f"{s.id}\t{s.path}\t{s.speaker}\t{s.split}", s.path) for s in sources]
                      + [(f"{s.id}\t{path}", path) for s in sources for path in s.inputs])
    if manifest.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        log(f"{manifest} is up to date ({len(sources)} files); nothing to do")
        return PrepResult(manifest, written=False)
    claim(out_dir, kind, audio_root)
    rows, skipped, folder = [], list(unusable), laid_out(out_dir)
    for i, s in enumerate(sorted(sources, key=lambda s: s.id)):
        info = usable_audio_info(s.path, on_error, skipped)
        if info is None:
            continue
        rate, channels, frames = info
        rel = laid_out(s.path)
        if folder in rel.parents:
            rel = rel.relative_to(folder)
        if cut is None:
            rows.append(Utterance(s.id, str(rel), s.speaker, s.split or "train", round(frames / rate, 4), rate,
                                  channels, frames, s.meta))
        else:
            try:
                segments = cut(s, rate, frames)
            except DataError as err:
                if on_error == "stop":
                    raise
                skipped.append(str(err))
                continue
            rows += [Utterance(g.id, str(rel), s.speaker, g.split or s.split or "train",
                               round(g.num_samples / rate, 4), rate, channels, g.num_samples,
                               json.dumps({"start": g.start})) for g in segments]
        if (i + 1) % 1000 == 0:
            log(f"checked {i + 1}/{len(sources)} files")
    if not rows:
        example = f", e.g. {skipped[0]}" if skipped else ""
        raise DataError(f"none of the {len(sources) + len(unusable)} audio files for {out_dir} gives a manifest "
                        f"row{example}")
    if audio_root is not None:
        atomic_write_text(out_dir / "audio_roots.txt", f"{laid_out(audio_root)}\n")
    write_manifest(manifest, rows)
    if frame_labels is not None:
        write_frame_labels(out_dir, frame_labels, rows, log=log)
    report = [f"{len(rows)} utterances written, {len(skipped)} files skipped"] + skipped
    atomic_write_text(out_dir / "prep_report.txt", "\n".join(report) + "\n")
    atomic_write_text(stamp, key + "\n")  # last: only a complete preparation is marked as done
    log(f"wrote {manifest}: {len(rows)} utterances" + (f", skipped {len(skipped)} (see prep_report.txt)" if skipped else ""))
    return PrepResult(manifest, True, rows, skipped)


def write_frame_labels(out_dir, labels: dict, rows: list[Utterance], frame_rate: int = 100, tolerance: int = 2,
                       log=print) -> dict:
    """Keep the frame labels of the manifest's utterances whose length agrees with the audio (within
    `tolerance` frames) and write out_dir/phones.txt; return counts of what was dropped and why."""
    kept, mismatched = {}, []
    for row in rows:
        if row.id not in labels:
            continue
        expected = int(row.duration * frame_rate)
        if abs(len(labels[row.id]) - expected) > tolerance:
            mismatched.append(f"{row.id}: {len(labels[row.id])} label frames for {expected} audio frames")
            continue
        kept[row.id] = labels[row.id]
    ids = {r.id for r in rows}
    unused = sum(uid not in ids for uid in labels)
    write_phones(Path(out_dir) / "phones.txt", kept)
    if mismatched:
        atomic_write_text(Path(out_dir) / "phones_report.txt", "\n".join(mismatched) + "\n")
    log(f"phone labels: {len(kept)} utterances kept, {len(mismatched)} dropped for a length mismatch "
        f"(phones_report.txt), {unused} label lines without audio, {len(ids) - len(kept) - len(mismatched)} "
        f"utterances without labels")
    return {"kept": len(kept), "mismatched": len(mismatched), "unused": unused}
