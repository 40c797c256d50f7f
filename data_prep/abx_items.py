"""Write the ABX item file of a corpus split from its frame alignments (phones.txt), for seqcpc.eval.abx.

    python -m data_prep.abx_items --manifest data/espeak/manifest.tsv --split test
        --out data/espeak/abx_test.item [--max-per-speaker N] [--keep-silence]

The item file is the ZeroSpeech / Libri-light format: a header line
`#file onset offset #phone prev-phone next-phone speaker`, then one space-separated row per phone segment with
its neighbours as context: the manifest id, onset and offset in seconds, the phone, the phones before and after
it, the speaker. A segment is a run of equal labels in phones.txt (10 ms frames); phones_vocab.txt beside it
gives the symbols (without it the indices are the symbols). The first and last segment of an utterance have no
context and are left out, and so are silences ("sil") unless --keep-silence; silence is still a context.
--max-per-speaker N keeps the first N utterances of each speaker (0: all) to make a smaller test. Running it
twice writes the same file.
"""
import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from seqcpc.audio.manifest import read_manifest, read_phones, read_vocab
from seqcpc.errors import DataError, report_errors
from seqcpc.files import atomic_write_text

FRAME_SECONDS = 0.01  # one label per 10 ms frame (seqcpc/audio/manifest.py)
SILENCES = {"sil", "SIL", "<sil>"}
HEADER = "#file onset offset #phone prev-phone next-phone speaker"


class Segment(NamedTuple):
    start: int  # first frame
    end: int  # one past the last frame
    label: int


def segments(labels: np.ndarray) -> list[Segment]:
    """Runs of equal frame labels, in order."""
    if len(labels) == 0:
        return []
    cuts = np.flatnonzero(np.diff(labels)) + 1  # first frame of every run but the first
    starts, ends = np.r_[0, cuts], np.r_[cuts, len(labels)]
    return [Segment(int(s), int(e), int(labels[s])) for s, e in zip(starts, ends)]


def utterance_items(uid: str, speaker: str, labels: np.ndarray, symbol, keep_silence: bool = False) -> list[str]:
    """Item rows of one utterance: every segment but the first and the last, with its neighbours as context."""
    segs, rows = segments(labels), []
    for prev, seg, nxt in zip(segs, segs[1:], segs[2:]):
        phone = symbol(seg.label)
        if phone in SILENCES and not keep_silence:
            continue
        rows.append(f"{uid} {seg.start * FRAME_SECONDS:.2f} {seg.end * FRAME_SECONDS:.2f} {phone} "
                    f"{symbol(prev.label)} {symbol(nxt.label)} {speaker}")
    return rows


def build(manifest, split: str, out, max_per_speaker: int = 0, keep_silence: bool = False, log=print) -> int:
    """Write the item file `out` for the utterances of `split`; returns the number of items."""
    folder = Path(manifest).parent
    phones_path, vocab_path = folder / "phones.txt", folder / "phones_vocab.txt"
    if not phones_path.is_file():
        raise DataError(f"{phones_path} does not exist: ABX items need the frame alignments of {manifest} "
                        f"(a corpus built by data_prep.espeak_corpus has them)")
    labels = read_phones(phones_path)
    vocab = read_vocab(vocab_path) if vocab_path.is_file() else None

    def symbol(index: int) -> str:
        if vocab is None:
            return str(index)
        if index >= len(vocab):
            raise DataError(f"{phones_path}: phone index {index} has no symbol in {vocab_path} ({len(vocab)} lines)")
        return vocab[index]

    rows, used, utterances = [HEADER], {}, 0
    for row in read_manifest(manifest, [split]):
        if row.id not in labels or (max_per_speaker and used.get(row.speaker, 0) >= max_per_speaker):
            continue
        if " " in row.id or " " in row.speaker:
            raise DataError(f"{manifest}: id {row.id!r} or speaker {row.speaker!r} holds a space, which the "
                            f"space-separated item file cannot store")
        used[row.speaker] = used.get(row.speaker, 0) + 1
        utterances += 1
        rows += utterance_items(row.id, row.speaker, labels[row.id], symbol, keep_silence)
    if not utterances:
        raise DataError(f"{manifest}: no utterance of split {split!r} has phone labels in {phones_path} (is the "
                        f"split name right? splits: train, test, heldout)")
    if len(rows) == 1:
        raise DataError(f"{phones_path}: no utterance of split {split!r} has a phone between two others")
    atomic_write_text(out, "\n".join(rows) + "\n")
    log(f"{out}: {len(rows) - 1} items from {utterances} utterances of {len(used)} speakers")
    return len(rows) - 1


def main(argv=None, log=print) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="manifest.tsv of a corpus with phones.txt beside it")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", required=True, help="the item file to write")
    parser.add_argument("--max-per-speaker", type=int, default=0, help="utterances of each speaker (0: all)")
    parser.add_argument("--keep-silence", action="store_true", help="also make items of silences")
    args = parser.parse_args(argv)
    if args.max_per_speaker < 0:
        parser.error("--max-per-speaker must be >= 0")
    return build(args.manifest, args.split, args.out, args.max_per_speaker, args.keep_silence, log)


if __name__ == "__main__":
    sys.exit(report_errors(main, "data_prep.abx_items"))
