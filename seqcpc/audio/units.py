"""Discrete units of speech: k-means (seqcpc.eval.kmeans) on a model's 10 ms frames of a corpus, exported per
utterance in the format of phones.txt ("<id> <unit> <unit> ...", one line per utterance, so
seqcpc.audio.manifest.read_phones reads them back) with the centroids as .npy, and scored against the corpus's
alignments when it has them (seqcpc.eval.units).

Shapes: F frames, D feature dim, K units, T frames of an utterance.
"""
from pathlib import Path

import numpy as np
import torch

from seqcpc.audio.features import frame_dataset
from seqcpc.audio.io import read_audio
from seqcpc.audio.manifest import manifest_roots, read_manifest, read_phones, resolve_path, write_phones
from seqcpc.errors import ConfigError, DataError
from seqcpc.eval.kmeans import assign, fit_kmeans
from seqcpc.eval.probes import random_subset
from seqcpc.eval.report import markdown_table, write_report
from seqcpc.eval.units import frame_unit_scores, joint_counts, unit_metrics
from seqcpc.files import atomic_save_npy


def write_units(path, units: dict[str, np.ndarray]) -> None:
    """units.txt: "<id> <unit> <unit> ..." per utterance, written atomically (phones.txt's format and writer)."""
    write_phones(path, units)


def unit_scores(extractors: dict, manifest, labels: dict, sample_rate: int, k: int = 50, max_frames: int = 200_000,
                seed: int = 0, split: str = "test", per_speaker: int = 0, fit_split: str = "train",
                allow_outside: bool = False, log=None) -> dict:
    """{name: {"unit_purity", "unit_pnmi"}} for each feature extractor (waves (B, L) -> frames (B, T, D)):
    k-means with k units fitted on at most max_frames labelled frames of `fit_split` (at most `per_speaker`
    utterances of each speaker, 0: all), scored on as many frames of `split` (the same frames when the splits
    are one)."""
    def frames(which):
        return frame_dataset(extractors, manifest, which, labels, sample_rate, max_frames, per_speaker, seed,
                             allow_outside)

    fit = frames(fit_split)
    score = fit if split == fit_split else frames(split)
    num_phones = int(max((y.max() for y in labels.values() if len(y)), default=0)) + 1
    return frame_unit_scores(fit, score, k, seed, num_phones, log)


@torch.no_grad()
def utterance_frames(model, which: str, manifest, split: str, sample_rate: int, allow_outside: bool, device):
    """(id, frames (T, D) float32) of every utterance of a split, in manifest order."""
    roots = manifest_roots(manifest)
    for row in read_manifest(manifest, [split]):
        path = resolve_path(manifest, row.path, roots, allow_outside)
        wave = read_audio(path, *row.span_at(sample_rate), sample_rate=sample_rate)  # (L,)
        z, c = model.embed(torch.from_numpy(wave)[None, None].to(device))  # (1, T, D), (1, T, E)
        yield row.id, (c if which == "c" else z)[0].float().cpu().numpy()


def run_units(checkpoint, manifest, out_dir, split: str = "test", k: int = 50, which: str = "c",
              max_frames: int = 1_000_000, seed: int = 0, device="cpu", log=print) -> dict:
    """Fit k-means on the frames of a CPC audio model over one split of a manifest (at most max_frames of
    them, 0: all) and write units.txt (every utterance of the split), centroids.npy and, with phones.txt beside
    the manifest, results.json / results.md (purity and PNMI on the same split's labelled frames)."""
    from seqcpc.extract import load_cpc

    if which not in ("c", "z"):
        raise ConfigError(f"--features must be c or z, got {which!r}")
    cfg, model = load_cpc(checkpoint, device)
    if cfg.model.modality != "audio":
        raise ConfigError(f"{checkpoint} holds an {cfg.model.modality} model; units are made of audio frames")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spill, ids, lengths = out_dir / "frames.f32.tmp", [], []  # frames go to disk: a split may not fit in memory
    try:
        with open(spill, "wb") as f:
            for uid, x in utterance_frames(model, which, manifest, split, cfg.data.sample_rate,
                                           cfg.data.allow_outside_paths, device):
                f.write(x.tobytes())
                ids.append(uid)
                lengths.append(len(x))
                dim = x.shape[1]
        if not ids:
            raise DataError(f"{manifest} has no utterance in split {split!r}")
        frames = np.memmap(spill, np.float32, "r", shape=(sum(lengths), dim))  # (F, D)
        fit_on = frames[random_subset(len(frames), max_frames, seed)] if 0 < max_frames < len(frames) else frames
        log(f"k-means: {k} units on {len(fit_on)} of {len(frames)} frames ({which}, split {split})")
        km = fit_kmeans(fit_on, k, seed=seed, device=device, log=log)
        labels = assign(frames, km.centroids, device=device)  # (F,)
        del frames, fit_on  # the memmap holds the spill file open
    finally:
        spill.unlink(missing_ok=True)
    units = dict(zip(ids, np.split(labels, np.cumsum(lengths)[:-1])))
    write_units(out_dir / "units.txt", units)
    atomic_save_npy(out_dir / "centroids.npy", km.centroids.numpy())
    counts = {"units": k, "features": which, "split": split, "utterances": len(ids), "frames": len(labels),
              "fit_frames": min(max_frames or len(labels), len(labels)), "seed": seed}
    log(f"wrote units of {len(ids)} utterances to {out_dir / 'units.txt'} and {out_dir / 'centroids.npy'}")

    phones_path = Path(manifest).parent / "phones.txt"
    if not phones_path.is_file():
        return {"counts": counts}
    phones = read_phones(phones_path)
    ys, us = [], []
    for uid in ids:
        if uid in phones:  # the model and the alignment may disagree on the last frame or two
            n = min(len(phones[uid]), len(units[uid]))
            ys.append(phones[uid][:n])
            us.append(units[uid][:n])
    if not ys:
        raise DataError(f"{phones_path} labels no utterance of split {split!r} of {manifest}")
    y = np.concatenate(ys)
    results = unit_metrics(joint_counts(y, np.concatenate(us), None, k))
    counts.update(labelled_utterances=len(ys), labelled_frames=len(y))
    table = markdown_table(["features", "units", "phone purity %", "cluster purity %", "PNMI %"],
                           [[which, k, *(f"{100 * results[m]:.1f}" for m in ("phone_purity", "cluster_purity",
                                                                            "pnmi"))]])
    facts = (", ".join(f"{key}: {v}" for key, v in counts.items()) + "\n\nk-means fitted and scored on the frames "
             f"of split {split!r} (unsupervised: the phones are only used to score)")
    write_report(out_dir, f"Discrete units of {checkpoint}", facts, table, {"results": results, "counts": counts},
                 log)
    return {"results": results, "counts": counts}
