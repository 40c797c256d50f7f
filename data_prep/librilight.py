"""Prepare LibriLight (<subset>/<speaker>/<book>/<file>.flac with <file>.json beside it), cut at its voice activity.

    python -m data_prep.librilight --root librilight/small --out data/librilight_small \
        [--max-seconds 20] [--min-seconds 1] [--test-fraction 0.05] [--heldout-speakers 0] [--on-error skip|stop]

--root is one subset folder (small, medium, large: <speaker>/<book>/<file>.flac) or a folder holding several
(<subset>/<speaker>/<book>/<file>.flac; ids then start with the subset, as a book may be in two of them).
LibriLight's files run from minutes to an hour, and each .json lists the seconds of speech in
"voice_activity": [[start, end], ...]. Each file is cut into utterances of at most --max-seconds: consecutive
voice-activity segments are merged while the span from the first one's start to the last one's end stays
within the maximum, a segment longer than the maximum is split into equal pieces, and pieces shorter than
--min-seconds are dropped. LibriLight's own script (data_preparation/cut_by_vad.py in facebookresearch/
libri-light) merges segments the same way up to a target length (60 s by default) but writes new files of the
speech alone and keeps a longer segment whole; here no audio is copied or re-encoded: each manifest row is a
span of the original file, pauses between its segments included (meta {"start": first sample}, see
seqcpc/audio/manifest.py), and spans are kept near LibriSpeech's utterance lengths (at most 35 s) so that an
epoch's one window per row covers the corpus as it does LibriSpeech's.

Row ids are <speaker>/<book>/<file>_<segment index>; the speaker is the speaker folder. Splits: each row goes to
train, or to test by a hash of its id (--test-fraction of each speaker's rows); --heldout-speakers moves whole
speakers to "heldout". A flac without its .json, a .json without voice_activity and an unreadable file are
skipped and listed in prep_report.txt (or stop the preparation with --on-error stop). Running it twice does
nothing the second time.
"""
import json
import math
import sys
from pathlib import Path

from seqcpc.argtypes import bounded, finite
from seqcpc.audio.prepare import Segment, Source, hold_out_speakers, prep_parser, prepare
from seqcpc.errors import DataError, report_errors
from seqcpc.files import existing_folder, stable_split, unusable_name

positive_seconds = bounded(finite, lambda v: v > 0, "is not a number of seconds > 0", "positive_seconds")
nonnegative_seconds = bounded(finite, lambda v: v >= 0, "is not a number of seconds >= 0", "nonnegative_seconds")


def find_sources(root) -> tuple[list[Source], list[str]]:
    """The flac files of a subset folder, or of every subset under a root, and "path: reason" for those that
    cannot be used (no .json beside them, a name a manifest cannot hold)."""
    root = existing_folder(root, "LibriLight folder")
    files = sorted(root.glob("*/*/*.flac"))  # a subset: <speaker>/<book>/<file>.flac
    subsets = not files
    if subsets:
        files = sorted(root.glob("*/*/*/*.flac"))  # a root of subsets: <subset>/<speaker>/<book>/<file>.flac
    if not files:
        raise DataError(f"no <speaker>/<book>/<file>.flac (nor <subset>/<speaker>/<book>/<file>.flac) files under "
                        f"{root}: --root is a LibriLight subset such as small/, or the folder holding the subsets")
    sources, unusable = [], []
    for path in files:
        json_path = path.with_suffix(".json")
        if problem := unusable_name(path, root):
            unusable.append(problem)
        elif not json_path.is_file():
            unusable.append(f"{path}: no {json_path.name} beside it, which holds the file's voice activity")
        else:
            uid = str(path.relative_to(root).with_suffix("")).replace(" ", "_")
            sources.append(Source(uid, path, path.parent.parent.name, inputs=(json_path,)))
    return sources, unusable


def voice_activity(json_path: Path) -> list[tuple[float, float]]:
    """The [start, end] seconds of speech listed in a LibriLight .json, sorted; a DataError names the file."""
    try:
        spans = json.loads(json_path.read_text())["voice_activity"]
        spans = sorted((float(start), float(end)) for start, end in spans)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{json_path}: no usable \"voice_activity\": [[start, end], ...] in seconds "
                        f"({type(err).__name__}: {err})") from err
    bad = [span for span in spans if not (math.isfinite(span[1]) and 0 <= span[0] <= span[1])]
    if bad:
        raise DataError(f"{json_path}: voice activity {list(bad[0])} is not [start, end] seconds with "
                        f"0 <= start <= end")
    return spans


def cut_spans(spans: list[tuple[int, int]], longest: int, shortest: int) -> list[tuple[int, int]]:
    """[start, end) sample spans of at most `longest` samples: consecutive spans (sorted) merged while the merged
    span fits, a longer one split into equal pieces; pieces shorter than `shortest` dropped."""
    pieces, current = [], None
    for start, end in spans:
        if current and max(current[1], end) - current[0] <= longest:
            current = (current[0], max(current[1], end))
            continue
        if current:
            pieces.append(current)
        start, current = max(start, pieces[-1][1]) if pieces else start, None  # overlaps: no sample twice
        if end - start > longest:  # alone, in equal pieces
            count = -(-(end - start) // longest)
            bounds = [start + (end - start) * k // count for k in range(count + 1)]
            pieces += list(zip(bounds[:-1], bounds[1:]))
        elif start < end:
            current = (start, end)
    if current:
        pieces.append(current)
    return [(start, end) for start, end in pieces if end - start >= max(shortest, 1)]


def segment_cutter(max_seconds: float, min_seconds: float, test_fraction: float):
    """cut(source, sample_rate, frames) -> [Segment] for prepare: the source's voice activity cut by cut_spans,
    each piece in train or test by a hash of its id (a held-out source's pieces stay held out)."""
    def cut(source: Source, rate: int, frames: int) -> list[Segment]:
        spans = [(round(start * rate), min(round(end * rate), frames))
                 for start, end in voice_activity(source.inputs[0])]
        pieces = cut_spans([span for span in spans if span[0] < span[1]], round(max_seconds * rate),
                           round(min_seconds * rate))
        segments = [Segment(f"{source.id}_{i:04d}", start, end - start) for i, (start, end) in enumerate(pieces)]
        for g in segments:
            g.split = "heldout" if source.split == "heldout" else stable_split(g.id, test_fraction)
        return segments

    return cut


def main(argv=None):
    parser = prep_parser(__doc__)
    parser.add_argument("--max-seconds", type=positive_seconds, default=20.0, help="longest utterance")
    parser.add_argument("--min-seconds", type=nonnegative_seconds, default=1.0, help="shorter pieces are dropped")
    parser.set_defaults(test_fraction=0.05)
    args = parser.parse_args(argv)
    if args.min_seconds > args.max_seconds:
        parser.error(f"--min-seconds {args.min_seconds} is longer than --max-seconds {args.max_seconds}")
    sources, unusable = find_sources(args.root)
    hold_out_speakers(sources, args.heldout_speakers)
    options = {"test_fraction": args.test_fraction, "heldout_speakers": args.heldout_speakers,
               "max_seconds": args.max_seconds, "min_seconds": args.min_seconds}
    return prepare(sources, args.out, options, "data_prep.librilight", args.on_error, audio_root=args.root,
                   unusable=unusable, cut=segment_cutter(args.max_seconds, args.min_seconds, args.test_fraction))


if __name__ == "__main__":
    sys.exit(report_errors(main, "data_prep.librilight"))
