"""Prepare a plain folder corpus: <root>/<speaker>/**/*.{wav,flac,ogg}, any sample rate, mono or stereo.

    python -m data_prep.folder --root /data/my_corpus --out data/my_corpus [--test-fraction 0.2]
        [--heldout-speakers 0] [--on-error skip|stop]

The audio stays where it is; data/my_corpus gets manifest.tsv (see seqcpc/audio/manifest.py), audio_roots.txt
and prep_report.txt. Splits: each speaker's utterances go to train or test by a hash of their id;
--heldout-speakers moves whole speakers to "heldout" (few-shot evaluation). Running it twice does nothing
the second time.
"""
import sys
from pathlib import Path

from seqcpc.audio.io import AUDIO_EXTENSIONS
from seqcpc.audio.prepare import Source, assign_splits, hold_out_speakers, prep_parser, prepare
from seqcpc.errors import DataError, report_errors


def find_sources(root) -> list[Source]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"corpus folder {root} does not exist")
    sources = []
    for speaker_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(speaker_dir.rglob("*")):
            if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file():
                uid = str(path.relative_to(root).with_suffix("")).replace(" ", "_")
                sources.append(Source(uid, path, speaker_dir.name))
    if not sources:
        raise DataError(f"no {'/'.join(AUDIO_EXTENSIONS)} files under {root}/<speaker>/")
    return sources


def main(argv=None):
    parser = prep_parser(__doc__)
    args = parser.parse_args(argv)
    sources = find_sources(args.root)
    hold_out_speakers(sources, args.heldout_speakers)
    assign_splits(sources, args.test_fraction)
    options = {"test_fraction": args.test_fraction, "heldout_speakers": args.heldout_speakers}
    return prepare(sources, args.out, options, args.on_error, audio_root=args.root)


if __name__ == "__main__":
    sys.exit(report_errors(main, "data_prep.folder"))
