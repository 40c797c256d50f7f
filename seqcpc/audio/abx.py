"""ABX phone discrimination on a speech corpus: the items of an item file (data_prep.abx_items) read from the
corpus's manifest, scored by seqcpc.eval.abx.

    abx_scores({"mfcc13": MFCCFrames(13, 16000, 160), "cpc": CPCFrames(model)}, "data/espeak/manifest.tsv",
               read_items("data/espeak/abx_test.item"), 16000)  ->  {name: {"abx_within": error, "abx_across": error}}

Shapes: L samples, T frames, D feature dim.
"""
import torch

from seqcpc.audio.io import read_audio
from seqcpc.audio.manifest import manifest_roots, read_manifest, resolve_path
from seqcpc.errors import DataError
from seqcpc.eval.abx import MODES, abx_table, first_files, token_features


def manifest_waves(manifest, files, sample_rate: int, allow_outside: bool = False):
    """load(file id) -> waves (1, L) float32 at sample_rate, for the manifest ids `files` (all checked first)."""
    wanted = set(files)
    rows = {row.id: row for row in read_manifest(manifest) if row.id in wanted}
    missing = sorted(wanted - set(rows))
    if missing:
        raise DataError(f"{manifest} has no row for item files {missing[:5]} ({len(missing)} in all): the item "
                        f"file belongs to another corpus")
    roots = manifest_roots(manifest)

    def load(uid):
        row = rows[uid]
        path = resolve_path(manifest, row.path, roots, allow_outside)
        return torch.from_numpy(read_audio(path, *row.span_at(sample_rate), sample_rate=sample_rate))[None]  # (1, L)

    return load


def item_features(extractor, manifest, items, sample_rate: int, frame_rate: float = 100,
                  allow_outside: bool = False) -> list:
    """[frames (T_i, D) of each item] of one extractor (waves (1, L) -> frames (1, T, D) at frame_rate)."""
    load = manifest_waves(manifest, {i.file for i in items}, sample_rate, allow_outside)
    return token_features({"features": extractor}, load, items, frame_rate)["features"]


def abx_scores(extractors: dict, manifest, items, sample_rate: int, frame_rate: float = 100,
               files_per_speaker: int = 0, max_per_group: int = 10, max_x_speakers: int = 5, seed: int = 0,
               modes=MODES, allow_outside: bool = False, log=print) -> dict:
    """{name: {"abx_within": error, "abx_across": error}} of each extractor (waves (1, L) -> frames (1, T, D) at
    frame_rate) on `items` (seqcpc.eval.abx.read_items; those of the first `files_per_speaker` files of each
    speaker; 0: all), each audio file read once; max_per_group, max_x_speakers and seed cap the triplets (see
    seqcpc.eval.abx)."""
    items = first_files(items, files_per_speaker)
    load = manifest_waves(manifest, {i.file for i in items}, sample_rate, allow_outside)
    return abx_table(extractors, load, items, frame_rate, max_per_group, max_x_speakers, seed, modes, log)
