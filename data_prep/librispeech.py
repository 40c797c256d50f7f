"""Prepare LibriSpeech (<root>/<speaker>/<chapter>/<spk>-<chap>-<utt>.flac, e.g. root = train-clean-100),
with the CPC paper's phone labels and splits when given.

    python -m data_prep.librispeech --root LibriSpeech/train-clean-100 --out data/librispeech100 \
        [--phones converted_aligned_phones.txt] [--train-split train_split.txt --test-split test_split.txt] \
        [--heldout-speakers 0] [--on-error skip|stop]

converted_aligned_phones.txt holds one utterance per line: its id, then one phone index per 10 ms frame;
train_split.txt / test_split.txt one utterance id per line (the files of the CPC reference code). Without
split files, each speaker's utterances go to train or test by a hash of their id. Labels whose length
disagrees with the audio by more than two frames are dropped and listed in phones_report.txt; split ids
that are not in the corpus are counted. Running it twice does nothing the second time.
"""
import re
import sys

from seqcpc.audio.manifest import read_phones
from seqcpc.audio.prepare import Source, assign_splits, hold_out_speakers, prep_parser, prepare
from seqcpc.errors import DataError, report_errors
from seqcpc.files import existing_file, existing_folder

NAME = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def find_sources(root) -> list[Source]:
    root = existing_folder(root, "LibriSpeech folder")
    sources = []
    for path in sorted(root.rglob("*.flac")):
        m = NAME.match(path.stem)
        if m and path.parent.name == m[2] and path.parent.parent.name == m[1]:
            sources.append(Source(path.stem, path, m[1]))
    if not sources:
        raise DataError(f"no <speaker>/<chapter>/<spk>-<chap>-<utt>.flac files under {root}")
    return sources


def read_ids(path) -> set[str]:
    return set(existing_file(path, "split file").read_text().split())


def apply_split_files(sources: list[Source], train_split, test_split, log=print) -> list[Source]:
    train, test = read_ids(train_split), read_ids(test_split)
    both = sorted(train & test)
    if both:
        raise DataError(f"{len(both)} utterance ids are in both {train_split} and {test_split}, e.g. {both[0]}: "
                        f"a probe would be scored on utterances it was trained on; fix the split files")
    known = {s.id for s in sources}
    missing = len((train | test) - known)
    if missing:
        log(f"warning: {missing} ids of the split files are not in the corpus and are ignored")
    kept = []
    for s in sources:
        if s.id in train or s.id in test:
            s.split = "train" if s.id in train else "test"
            kept.append(s)
    if not kept:
        raise DataError(f"no utterance of the corpus is named in {train_split} or {test_split}")
    return kept


def main(argv=None):
    parser = prep_parser(__doc__)
    parser.add_argument("--phones", help="converted_aligned_phones.txt")
    parser.add_argument("--train-split", help="train_split.txt")
    parser.add_argument("--test-split", help="test_split.txt")
    args = parser.parse_args(argv)
    if bool(args.train_split) != bool(args.test_split):
        parser.error("--train-split and --test-split go together")
    labels = read_phones(args.phones) if args.phones else None  # a bad label file stops before anything is written
    sources = find_sources(args.root)
    if args.train_split:
        sources = apply_split_files(sources, args.train_split, args.test_split)
    hold_out_speakers(sources, args.heldout_speakers)
    assign_splits(sources, args.test_fraction)
    options = {k: str(v) for k, v in vars(args).items()}
    return prepare(sources, args.out, options, "data_prep.librispeech", args.on_error, audio_root=args.root,
                   frame_labels=labels)


if __name__ == "__main__":
    sys.exit(report_errors(main, "data_prep.librispeech"))
