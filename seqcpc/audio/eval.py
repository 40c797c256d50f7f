"""Frozen-feature probes for speech (the CPC paper's protocol), beside MFCC and random-init baselines.

  speaker   linear classifier on a window's features averaged over time (speaker), on their mean and standard
            deviation over time (speaker_stats, the statistics pooling of x-vector speaker embeddings) and on its
            last frame (speaker_last), trained on train-split windows, scored on test-split windows of the same
            speakers, and a k-NN classifier on the averaged features (speaker_knn, probe.knn neighbours); on a long-tailed corpus
            (speaker_counts.json beside the manifest, from data_prep.espeak_corpus --tail) also the mean
            per-speaker accuracy of its head and tail halves (speaker_head, speaker_tail)
  phone     frame-level linear classifier at 100 Hz against the frame labels (phones.txt); on the same frames,
            k-means units (probe.units of them, fitted on the train frames) scored on the test frames by phone
            purity and PNMI (seqcpc/eval/units.py)
  ABX       phone discrimination error within and across speakers (seqcpc/eval/abx.py) on an item file
            (probe.abx_items, or abx_test.item beside the manifest, which data_prep.abx_items writes)
  few-shot  prototypical N-way K-shot episodes on pooled windows of the held-out speakers

Rows: CPC's context c (cpc) and latents z (cpc_z, probe.cpc_z), the same network with random weights, MFCC, and
any reference networks the caller adds (the speech recipe's supervised ceiling).

Shapes: B windows, L samples, T frames (L // hop), D feature dim. A feature extractor maps waves (B, L) to
frames (B, T, D) at the frame rate of the labels (10 ms).
"""
import json
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from einops import rearrange

from seqcpc.assembly import build_model
from seqcpc.audio.io import read_audio
from seqcpc.audio.manifest import manifest_roots, read_manifest, read_phones, resolve_path
from seqcpc.audio.torchaudio_compat import import_torchaudio
from seqcpc.config import Config
from seqcpc.errors import DataError, SeqcpcError
from seqcpc.eval.long_tail import class_groups, per_class_accuracy
from seqcpc.audio.abx import abx_scores
from seqcpc.eval.probes import (feasible_shots, knn_probe, linear_probe, prototypical_episodes, random_init,
                                random_subset)
from seqcpc.eval.units import frame_unit_scores
from seqcpc.eval.report import confusion_matrix, markdown_table, plot_accuracy_bars, plot_confusion, write_report


class CPCFrames:
    """Context (or latent) features of a CPC model. Extractors of one model's c and z share its forward pass:
    `other` is the extractor of the same model whose last result is reused when it was called on the same waves
    (the probes call every extractor on each batch in turn)."""

    def __init__(self, model, which: str = "c", other: "CPCFrames | None" = None):
        self.model, self.which = model.eval(), which
        self.last = other.last if other is not None else [None, None]  # [waves, (z, c)], shared with `other`

    @torch.no_grad()
    def __call__(self, waves):  # (B, L)
        if self.last[0] is not waves:
            self.last[:] = waves, self.model.embed(waves[:, None])
        z, c = self.last[1]
        return c if self.which == "c" else z  # (B, T, D)


class MFCCFrames:
    def __init__(self, n_mfcc: int, sample_rate: int, hop: int):
        ta = import_torchaudio()
        self.hop = hop
        self.mfcc = ta.transforms.MFCC(sample_rate, n_mfcc, melkwargs={"n_fft": 2 * hop + hop // 2,
                                                                       "hop_length": hop, "n_mels": 40})

    @torch.no_grad()
    def __call__(self, waves):  # (B, L)
        frames = rearrange(self.mfcc(waves), "b d t -> b t d")
        return frames[:, : waves.shape[1] // self.hop]  # (B, T, D)


class WindowSpec(NamedTuple):
    path: Path
    start: int  # first sample, at the probe's sample rate
    speaker: str


class WindowFeatures(NamedTuple):
    pooled: np.ndarray  # (N, D): each window's frames averaged
    last: np.ndarray  # (N, D): each window's last frame
    spread: np.ndarray  # (N, D): the standard deviation of each window's frames

    def stats(self) -> np.ndarray:
        """(N, 2D): mean and standard deviation over time."""
        return np.concatenate([self.pooled, self.spread], 1)


# the speaker probe's variants: column -> the features of a window it reads
SPEAKER_FEATURES = {"speaker": lambda f: f.pooled, "speaker_stats": WindowFeatures.stats,
                    "speaker_last": lambda f: f.last}


def window_specs(manifest, split: str, window: int, sample_rate: int, per_utterance: int, per_speaker: int,
                 allow_outside: bool = False):
    """[WindowSpec] of non-overlapping windows, at most `per_utterance` from each utterance and
    utterances of each speaker capped at `per_speaker` (0: all), in a fixed order."""
    roots, used, specs = manifest_roots(manifest), defaultdict(int), []
    for row in read_manifest(manifest, [split]):
        n = row.samples_at(sample_rate)
        if n < window or (per_speaker and used[row.speaker] >= per_speaker):
            continue
        used[row.speaker] += 1
        count = min(per_utterance, n // window)
        starts = np.linspace(0, n - window, count).astype(int) if count > 1 else [(n - window) // 2]
        path = resolve_path(manifest, row.path, roots, allow_outside)
        specs += [WindowSpec(path, int(s), row.speaker) for s in starts]
    return specs


def read_windows(specs, window: int, sample_rate: int) -> torch.Tensor:
    """(M, L) float32 waveforms of the windows of `specs`."""
    return torch.from_numpy(np.stack([read_audio(w.path, w.start, window, sample_rate) for w in specs]))


def embed_windows(extractors: dict, specs, window: int, sample_rate: int, batch: int = 32):
    """{name: WindowFeatures} for every window of `specs`, each window read once."""
    out = {name: ([], [], []) for name in extractors}
    for i in range(0, len(specs), batch):
        waves = read_windows(specs[i:i + batch], window, sample_rate)  # (B, L)
        for name, fn in extractors.items():
            frames = fn(waves).float()  # (B, T, D)
            for part, value in zip(out[name], (frames.mean(1), frames[:, -1], frames.std(1, correction=0))):
                part.append(value.numpy())
    return {name: WindowFeatures(*map(np.concatenate, parts)) for name, parts in out.items()}


def frame_dataset(extractors: dict, manifest, split: str, labels: dict, sample_rate: int, max_frames: int,
                  per_speaker: int = 0, seed=0, allow_outside: bool = False):
    """{name: (X (F, D), y (F,))}: frame features of labelled utterances (at most `per_speaker` of each
    speaker, 0: all), at most max_frames of them (a random subset)."""
    roots, feats, ys, used = manifest_roots(manifest), defaultdict(list), [], defaultdict(int)
    for row in read_manifest(manifest, [split]):
        if row.id not in labels or (per_speaker and used[row.speaker] >= per_speaker):
            continue
        used[row.speaker] += 1
        wave = torch.from_numpy(read_audio(resolve_path(manifest, row.path, roots, allow_outside), sample_rate=sample_rate))[None]
        frames = {name: fn(wave)[0].float().numpy() for name, fn in extractors.items()}
        T = min(len(labels[row.id]), *(len(f) for f in frames.values()))
        for name, f in frames.items():
            feats[name].append(f[:T])
        ys.append(labels[row.id][:T])
    if not ys:
        raise DataError(f"{manifest}: no utterance of split {split!r} has phone labels")
    y = np.concatenate(ys).astype(np.int64)
    keep = random_subset(len(y), max_frames, seed)
    return {name: (np.concatenate(f)[keep], y[keep]) for name, f in feats.items()}


def speaker_groups(manifest, tested: set[str]) -> dict[str, list[str]]:
    """{"head": speakers, "tail": speakers} among the `tested` speakers of a long-tailed corpus: the halves by the
    train utterances its speaker_counts.json records, most first (ties by name; with an odd number the middle
    speaker is in the head, as seqcpc.eval.long_tail.class_groups cuts); {} without that file (a balanced
    corpus) or with fewer than two tested speakers."""
    path = Path(manifest).parent / "speaker_counts.json"
    if not path.is_file() or len(tested) < 2:
        return {}
    counts = json.loads(path.read_text())
    missing = sorted(tested - set(counts))
    if missing:
        raise DataError(f"{path} has no count for speakers {missing[:5]} of {manifest}: it belongs to another "
                        f"corpus; rebuild the corpus or remove the file")
    ranked = sorted(tested)
    groups = class_groups([counts[s] for s in ranked], parts=2)
    return {"head": [ranked[i] for i in groups["many"]], "tail": [ranked[i] for i in groups["few"]]}


def extractors_for(cfg: Config, model, sample_rate: int, references: dict | None = None, z: bool = False) -> dict:
    """The features compared in every table: trained CPC (and its z), the same network untrained, MFCC, and the
    frozen context of each `references` network ({name: model}, e.g. a supervised ceiling)."""
    hop = round(sample_rate * 0.01)
    cpc = CPCFrames(model)
    rows = {"cpc": cpc, **({"cpc_z": CPCFrames(model, "z", other=cpc)} if z else {}),
            "random_init": CPCFrames(random_init(build_model, cfg, cfg.train.seed)),
            f"mfcc{cfg.probe.mfcc}": MFCCFrames(cfg.probe.mfcc, sample_rate, hop)}
    return {**rows, **{name: CPCFrames(ref) for name, ref in (references or {}).items()}}


def abx_item_file(cfg: Config) -> Path | None:
    """probe.abx_items, else abx_test.item beside the manifest when it is there, else None."""
    if cfg.probe.abx_items:
        if not Path(cfg.probe.abx_items).is_file():
            raise DataError(f"probe.abx_items={cfg.probe.abx_items} does not exist; write one with "
                            f"python -m data_prep.abx_items --manifest {cfg.data.manifest} --split test --out PATH")
        return Path(cfg.probe.abx_items)
    beside = Path(cfg.data.manifest).parent / "abx_test.item"
    return beside if beside.is_file() else None


def run_speech_probes(cfg: Config, model, out_dir, log=print, references: dict | None = None) -> dict:
    """Run every probe the corpus of data.manifest supports on the model's features beside the baselines (and
    the frozen context of each `references` network, {name: model}); write results.{json,md} and plots to
    out_dir; return results."""
    if cfg.data.kind != "manifest":
        raise SeqcpcError("the speech probes need a speech corpus: data.kind=manifest data.manifest=PATH")
    probe_cfg, manifest = cfg.probe, cfg.data.manifest
    sr, window = cfg.data.sample_rate, probe_cfg.window or cfg.data.window
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extractors = extractors_for(cfg, model, sr, references, probe_cfg.cpc_z)
    results = {name: {} for name in extractors}

    log("speaker probe: embedding windows")
    outside = cfg.data.allow_outside_paths
    spec = {split: window_specs(manifest, split, window, sr, probe_cfg.windows_per_utterance,
                                probe_cfg.utterances_per_speaker, outside) for split in ("train", "test")}
    speakers = sorted({w.speaker for w in spec["train"]})
    index = {s: i for i, s in enumerate(speakers)}
    unseen = {w.speaker for w in spec["test"]} - set(index)
    if unseen:  # a speaker needs training windows to be a class of the probe
        log(f"speaker probe: {len(unseen)} speakers have test but no training utterances and are left out")
        spec["test"] = [w for w in spec["test"] if w.speaker in index]
    if not spec["train"] or not spec["test"]:
        raise DataError(f"{manifest}: the speaker probe needs train and test windows of the same speakers")
    if len(speakers) < 2:
        raise DataError(f"{manifest}: the speaker probe needs at least two speakers with training and test "
                        f"utterances, and this corpus has {len(speakers)} ({speakers[0]}): every feature set would "
                        f"score 100%")
    groups = speaker_groups(manifest, {w.speaker for w in spec["test"]})
    emb = {split: embed_windows(extractors, spec[split], window, sr) for split in spec}
    y = {split: np.array([index[w.speaker] for w in spec[split]]) for split in spec}
    for name in extractors:
        for variant, features in SPEAKER_FEATURES.items():
            r = linear_probe(features(emb["train"][name]), y["train"], features(emb["test"][name]), y["test"],
                             len(speakers))
            results[name][variant] = r["acc"]
            if variant == "speaker":
                per_speaker = per_class_accuracy(y["test"], r["pred"], len(speakers))
                for group, members in groups.items():  # each speaker of the group weighs alike
                    results[name][f"speaker_{group}"] = float(np.mean(per_speaker[[index[s] for s in members]]))
                if name == "cpc":
                    matrix = confusion_matrix(y["test"], r["pred"], len(speakers))
        if probe_cfg.knn:
            results[name]["speaker_knn"] = knn_probe(emb["train"][name].pooled, y["train"], emb["test"][name].pooled,
                                                     y["test"], probe_cfg.knn)["acc"]
        log(f"  {name}: speaker {results[name]['speaker']:.3f} (mean + std {results[name]['speaker_stats']:.3f}, last "
            f"frame {results[name]['speaker_last']:.3f})"
            + "".join(f", {g} {results[name][f'speaker_{g}']:.3f}" for g in groups))
    plot_confusion(matrix, out_dir / "speaker_confusion.png", speakers, "speaker probe on CPC features (test)")

    phones_path = Path(manifest).parent / "phones.txt"
    if phones_path.is_file():
        log("phone probe: frame features")
        labels = read_phones(phones_path)
        train, test = (frame_dataset(extractors, manifest, split, labels, sr, probe_cfg.phone_frames,
                                     probe_cfg.phone_utterances_per_speaker, cfg.train.seed, outside)
                       for split in ("train", "test"))
        classes = int(max(max(labels[k].max() for k in labels), 0)) + 1
        for name in extractors:
            results[name]["phone"] = linear_probe(*train[name], *test[name], classes)["acc"]
            if probe_cfg.units:  # k-means fitted on the train frames, scored on the test frames
                results[name].update(frame_unit_scores({name: train[name]}, {name: test[name]}, probe_cfg.units,
                                                       cfg.train.seed, classes)[name])
            log(f"  {name}: phone {results[name]['phone']:.3f}" + (
                f", units purity {results[name]['unit_purity']:.3f} PNMI {results[name]['unit_pnmi']:.3f}"
                if probe_cfg.units else ""))

    items = abx_item_file(cfg)
    if items is not None:
        log(f"ABX: {items}")
        try:
            scores = abx_scores(extractors, manifest, items, sr, files_per_speaker=probe_cfg.abx_files_per_speaker,
                                seed=cfg.train.seed, allow_outside=outside, log=log)
        except DataError as err:  # e.g. too few tokens for a triplet: the other probes still count
            log(f"ABX left out: {err}")
            scores = {}
        for name, errors in scores.items():
            results[name].update(errors)

    held = window_specs(manifest, "heldout", window, sr, probe_cfg.windows_per_utterance,
                        probe_cfg.utterances_per_speaker, outside)
    _, labels_held, windows_per_speaker = np.unique([w.speaker for w in held], return_inverse=True,
                                                    return_counts=True)
    shots = feasible_shots(windows_per_speaker, probe_cfg, "held-out windows", log)
    n_way = probe_cfg.n_way
    if shots:
        log("few-shot: held-out speakers")
        emb_held = embed_windows(extractors, held, window, sr)
        for name in extractors:
            for k in shots:
                r = prototypical_episodes(emb_held[name].pooled, labels_held, n_way=n_way, k_shot=k,
                                          n_query=probe_cfg.n_query, episodes=probe_cfg.episodes, seed=cfg.train.seed)
                results[name][f"{n_way}way_{k}shot"] = r["mean"]
                results[name][f"{n_way}way_{k}shot_ci95"] = r["ci95"]
            log(f"  {name}: " + ", ".join(f"{k}-shot {results[name][f'{n_way}way_{k}shot']:.3f}" for k in shots))

    counts = {"speakers": len(speakers), "train_windows": len(spec["train"]), "test_windows": len(spec["test"]),
              "heldout_windows": len(held), **{f"{g}_speakers": len(members) for g, members in groups.items()}}
    write_speech_report(results, counts, out_dir, log)
    return {"results": results, "counts": counts}


def write_speech_report(results: dict, counts: dict, out_dir: Path, log=print) -> str:
    metrics = [m for m in next(iter(results.values())) if not m.endswith("ci95")]
    rows = [[name] + [f"{100 * r[m]:.1f}" + (f" ± {100 * r[m + '_ci95']:.1f}" if m + "_ci95" in r else "")
                      for m in metrics] for name, r in results.items()]
    table = markdown_table(["features", *metrics], rows)
    facts = ", ".join(f"{k}: {v}" for k, v in counts.items())
    if "head_speakers" in counts:
        facts += ("\n\nspeaker_head / speaker_tail: mean per-speaker accuracy of the half of the speakers with the "
                  "most / fewest train utterances (speaker_counts.json)")
    if "unit_pnmi" in metrics:
        facts += ("\n\nunit_purity / unit_pnmi: k-means units fitted on the phone probe's train frames, scored on its "
                  "test frames: phone purity and I(phone; unit) / H(phone)")
    if "abx_within" in metrics:
        facts += "\n\nabx_within / abx_across: ABX phone discrimination **error** rates (lower is better)"
    write_report(out_dir, "Speech probes (%, test split)", facts, table, {"results": results, "counts": counts}, log)
    plot_accuracy_bars({m: {n: r[m] for n, r in results.items()} for m in metrics}, out_dir / "probe_accuracy.png",
                       "frozen-feature probes (test accuracy; unit_*: purity, PNMI; abx_*: error)")
    return table
