"""What the speech probes compare: feature extractors (CPC's context c and latents z, MFCC, random weights, reference
networks) and the windows and labelled frames of a corpus they are run on.

Shapes: B windows, L samples, T frames (L // hop), D feature dim, F frames of a split. A feature extractor maps waves
(B, L) to frames (B, T, D) at the frame rate of the labels (10 ms).
"""
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from einops import rearrange

from seqcpc.audio.io import read_audio
from seqcpc.audio.manifest import manifest_roots, read_manifest, resolve_path
from seqcpc.audio.torchaudio_compat import import_torchaudio
from seqcpc.config import Config
from seqcpc.errors import DataError
from seqcpc.eval.probes import random_init, random_subset


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
    start: int  # first sample in the file, at the probe's sample rate
    speaker: str


class WindowFeatures(NamedTuple):
    pooled: np.ndarray  # (N, D): each window's frames averaged
    last: np.ndarray  # (N, D): each window's last frame
    spread: np.ndarray  # (N, D): the standard deviation of each window's frames

    def stats(self) -> np.ndarray:
        """(N, 2D): mean and standard deviation over time."""
        return np.concatenate([self.pooled, self.spread], 1)


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
        path, first = resolve_path(manifest, row.path, roots, allow_outside), row.start_at(sample_rate)
        specs += [WindowSpec(path, first + int(s), row.speaker) for s in starts]
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
        path = resolve_path(manifest, row.path, roots, allow_outside)
        wave = torch.from_numpy(read_audio(path, *row.span_at(sample_rate), sample_rate=sample_rate))[None]  # (1, L)
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


def baseline_names(cfg: Config) -> list[str]:
    """The rows of the baselines in the tables: the same network with random weights, and MFCC."""
    return ["random_init", f"mfcc{cfg.probe.mfcc}"]


def extractors_for(cfg: Config, model, sample_rate: int, references: dict | None = None, z: bool = False,
                   baselines: bool = True) -> dict:
    """The features compared in every table: trained CPC (and its z), the baselines (the same network untrained,
    MFCC) unless told not to, and the frozen context of each `references` network ({name: model}, e.g. a
    supervised ceiling)."""
    hop = round(sample_rate * 0.01)
    cpc = CPCFrames(model)
    rows = {"cpc": cpc, **({"cpc_z": CPCFrames(model, "z", other=cpc)} if z else {})}
    if baselines:
        random_name, mfcc_name = baseline_names(cfg)
        rows.update({random_name: CPCFrames(random_init(cfg, cfg.train.seed)),
                     mfcc_name: MFCCFrames(cfg.probe.mfcc, sample_rate, hop)})
    return {**rows, **{name: CPCFrames(ref) for name, ref in (references or {}).items()}}
