"""Prepare a plain folder corpus: <root>/<speaker>/**/<audio file>, any sample rate, mono or stereo.

    python -m data_prep.folder --root /data/my_corpus --out data/my_corpus [--test-fraction 0.2]
        [--heldout-speakers 0] [--on-error skip|stop]

Audio files are those libsndfile reads (seqcpc.audio.io.AUDIO_EXTENSIONS: .wav .flac .ogg .opus .mp3 .aiff
...); files in formats it cannot read (.m4a .aac .wma ...) are listed in prep_report.txt with how to convert
them (or stop the preparation with --on-error stop), and so are files whose names a manifest row cannot hold
(a tab, a line break, bytes that are not UTF-8). The speaker is the first folder under the root, whatever
the folders below it. The audio stays where it is; data/my_corpus gets manifest.tsv (see
seqcpc/audio/manifest.py), audio_roots.txt and prep_report.txt. Splits: each speaker's utterances go to
train or test by a hash of their id; --heldout-speakers moves whole speakers to "heldout" (few-shot
evaluation). Running it twice does nothing the second time.
"""
import sys

from seqcpc.audio.io import AUDIO_EXTENSIONS, UNREADABLE_EXTENSIONS
from seqcpc.audio.prepare import Source, assign_splits, hold_out_speakers, prep_parser, prepare
from seqcpc.errors import DataError, report_errors
from seqcpc.files import existing_folder, unusable_name


def find_sources(root) -> tuple[list[Source], list[str]]:
    """The audio files under <root>/<speaker>/, and "path: reason" for those whose names a manifest cannot hold."""
    root = existing_folder(root, "corpus folder")
    sources, unusable = [], []
    for speaker_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(speaker_dir.rglob("*")):
            # files libsndfile cannot read are kept, so that the preparation reports them instead of losing them
            if path.suffix.lower() not in AUDIO_EXTENSIONS + UNREADABLE_EXTENSIONS or not path.is_file():
                continue
            if problem := unusable_name(path, root):
                unusable.append(problem)
                continue
            uid = str(path.relative_to(root).with_suffix("")).replace(" ", "_")
            sources.append(Source(uid, path, speaker_dir.name))
    if not sources and not unusable:
        raise DataError(f"no {'/'.join(AUDIO_EXTENSIONS[:3])} files (nor {', '.join(AUDIO_EXTENSIONS[3:])}) under "
                        f"{root}/<speaker>/: the corpus needs one folder per speaker with the audio inside")
    return sources, unusable


def main(argv=None):
    parser = prep_parser(__doc__)
    args = parser.parse_args(argv)
    sources, unusable = find_sources(args.root)
    hold_out_speakers(sources, args.heldout_speakers)
    assign_splits(sources, args.test_fraction)
    options = {"test_fraction": args.test_fraction, "heldout_speakers": args.heldout_speakers}
    return prepare(sources, args.out, options, "data_prep.folder", args.on_error, audio_root=args.root,
                   unusable=unusable)


if __name__ == "__main__":
    sys.exit(report_errors(main, "data_prep.folder"))
