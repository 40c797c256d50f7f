"""Pack a prepared speech corpus (manifest.tsv, audio, phones.txt) into tar shards for data.kind=shards.

    python -m data_prep.shards --corpus data/librispeech100 --out data/librispeech100_shards \
        [--shard-mb 256] [--order shuffled|speaker] [--seed 0] [--splits train test]

Each split becomes shards of about --shard-mb of audio, all holding the same number of utterances (to one):
POSIX tar files in the WebDataset layout, one key per utterance (<key>.flac or the file's own audio extension,
<key>.json, <key>.phones when the corpus has frame labels), with <shard>.tsv beside each listing its items, and
index.json naming them all (seqcpc/audio/shards.py describes the format and how training reads it). The audio
is the file's bytes as they are (no re-encoding), or for a row that is a segment of its file (data_prep.librilight
cuts long files at their voice activity) the segment alone, as 16-bit mono FLAC. --order shuffled (the default)
spreads every speaker over the shards, so that any batch mixes the corpus; --order speaker keeps each speaker's
utterances together, which data.batching=speaker (one-speaker batches) needs. Bad rows are refused as the manifest reader refuses them;
an unreadable audio file is skipped and listed (--on-error skip) or stops the packing (stop). A shard is
written to a temporary file and renamed, and index.json is written last, so a packing stopped half way leaves
no index to train from; running it again redoes it.
"""
import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from seqcpc.argtypes import bounded, finite
from seqcpc.audio.manifest import SPLITS, manifest_roots, read_manifest, read_phones, resolve_path
from seqcpc.audio.io import read_audio, usable_audio_info
from seqcpc.audio.shards import FORMAT, INDEX
from seqcpc.errors import DataError, report_errors
from seqcpc.files import atomic_write_text, claim_output, existing_file

KIND = "data_prep.shards"


def split_rows(manifest, split: str, order: str, seed: int, on_error: str, skipped: list) -> list:
    """The usable rows of one split with their audio path and its frame count, in the shards' order."""
    roots = manifest_roots(manifest)
    rows = []
    for row in read_manifest(manifest, [split]):
        path = resolve_path(manifest, row.path, roots)
        info = usable_audio_info(path, on_error, skipped)
        problem = info and row.span_problem(info[2])
        if problem:
            if on_error == "stop":
                raise DataError(f"{manifest}: {problem}")
            skipped.append(problem)
        elif info is not None:
            rows.append((row, path, info[2]))
    if order == "speaker":
        rows.sort(key=lambda r: (r[0].speaker, r[0].id))
    else:
        rows = [rows[i] for i in np.random.default_rng([seed, SPLITS.index(split)]).permutation(len(rows))]
    return rows


def audio_bytes(row, path: Path, frames: int) -> tuple[bytes, str]:
    """(bytes, extension) of a row's audio: its file as it is, or the segment it names as 16-bit FLAC."""
    if row.start == 0 and row.num_samples == frames:
        return path.read_bytes(), path.suffix.lower().lstrip(".") or "audio"
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(read_audio(path, row.start, row.num_samples), -1, 1), row.sample_rate, format="FLAC",
             subtype="PCM_16")
    return buffer.getvalue(), "flac"


def write_shard(tar: Path, rows: list, first: int, labels: dict | None) -> dict:
    """Write one shard (tar + .tsv) atomically; returns its index entry."""
    from webdataset import TarWriter

    tmp = tar.with_name(tar.name + ".tmp")
    speakers, size, lines = {}, 0, []
    with open(tmp, "wb") as f, TarWriter(f) as writer:
        for j, (row, path, frames) in enumerate(rows):
            key = f"{first + j:09d}"
            data, ext = audio_bytes(row, path, frames)
            sample = {"__key__": key, ext: data,
                      "json": {"id": row.id, "speaker": row.speaker, "samples": row.num_samples,
                               "sample_rate": row.sample_rate}}
            if labels is not None and row.id in labels:
                sample["phones"] = labels[row.id].astype("<i2").tobytes()
            writer.write(sample)
            speakers[row.speaker] = speakers.get(row.speaker, 0) + 1
            size += len(data)
            lines.append(f"{key}\t{row.id}\t{row.speaker}\t{row.num_samples}\t{row.sample_rate}\n")
    atomic_write_text(tar.with_suffix(".tsv"), "".join(lines))
    tmp.replace(tar)
    return {"tar": "", "items": len(rows), "speakers": speakers, "bytes": size}


def pack_split(out: Path, split: str, rows: list, shard_bytes: float, labels: dict | None, log) -> list:
    """Shards of one split, each with len(rows) // shards or one more utterances; returns their entries."""
    total = sum(path.stat().st_size * row.num_samples / frames for row, path, frames in rows)  # a segment: its share
    count = max(1, min(len(rows), round(total / shard_bytes)))
    (out / split).mkdir(exist_ok=True)
    entries, start, first, written = [], time.perf_counter(), 0, 0
    for s, part in enumerate(np.array_split(np.arange(len(rows)), count)):
        tar = out / split / f"shard-{s:06d}.tar"
        entry = write_shard(tar, [rows[i] for i in part], first, labels)
        entries.append({**entry, "tar": f"{split}/{tar.name}"})
        first, written = first + len(part), written + entry["bytes"]
        if (s + 1) % 10 == 0 or s + 1 == count:
            rate = written / 1e6 / max(time.perf_counter() - start, 1e-9)
            eta = (total - written) / 1e6 / max(rate, 1e-9)
            log(f"{split}: {s + 1}/{count} shards, {written / 1e6:.0f} MB at {rate:.1f} MB/s, ETA {eta:.0f} s")
    return entries


def pack(corpus, out, shard_mb: float, order: str, seed: int, splits: list[str], on_error: str,
         log=print) -> dict:
    """Pack the corpus folder `corpus` (manifest.tsv, phones.txt) into `out`; returns the index written."""
    manifest = existing_file(Path(corpus) / "manifest.tsv", "manifest")
    phones = Path(corpus) / "phones.txt"
    labels = read_phones(phones) if phones.is_file() else None
    skipped = []
    rows = {split: split_rows(manifest, split, order, seed, on_error, skipped) for split in splits}
    if not any(rows.values()):
        raise DataError(f"{manifest}: no usable utterance in the splits {', '.join(splits)}")
    out = claim_output(out, KIND, [INDEX, *SPLITS])
    (out / INDEX).unlink(missing_ok=True)  # no index while the shards change: nothing trains on a half packing
    for old in out.glob("*/shard-*"):  # a packing before this one (its shard count may differ)
        old.unlink()
    index = {"format": FORMAT, "order": order, "manifest": str(manifest.resolve()),
             "speakers": sorted({row.speaker for row, *_ in rows.get("train", [])}),
             "phone_max": max((int(v.max()) for v in labels.values() if len(v)), default=None) if labels else None,
             "splits": {}}
    for split, split_rows_ in rows.items():
        if split_rows_:
            index["splits"][split] = pack_split(out, split, split_rows_, shard_mb * 1e6, labels, log)
    if skipped:
        log(f"skipped {len(skipped)} unreadable files, e.g. {skipped[0]}")
    atomic_write_text(out / INDEX, json.dumps(index, indent=1) + "\n")
    log(f"wrote {out / INDEX}: " + ", ".join(f"{s} {len(e)} shards ({sum(x['items'] for x in e)} utterances)"
                                               for s, e in index["splits"].items()))
    return index


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="a prepared corpus folder (manifest.tsv)")
    parser.add_argument("--out", required=True, help="the shard folder to write")
    megabytes = bounded(finite, lambda v: v > 0, "is not a number > 0", "megabytes")
    parser.add_argument("--shard-mb", type=megabytes, default=256.0, help="audio per shard, in MB (default 256)")
    parser.add_argument("--order", choices=["shuffled", "speaker"], default="shuffled",
                        help="utterances spread over the shards (default), or each speaker's kept together "
                             "(data.batching=speaker)")
    parser.add_argument("--seed", type=int, default=0, help="of the shuffled order")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=["train", "test"])
    parser.add_argument("--on-error", choices=["skip", "stop"], default="skip")
    args = parser.parse_args(argv)
    pack(args.corpus, args.out, args.shard_mb, args.order, args.seed, args.splits, args.on_error)
    return 0


if __name__ == "__main__":
    sys.exit(report_errors(main, KIND))
