"""Speech in few-shot learning: N-way K-shot speaker identification. The evaluation classes are the speakers
of the manifest's "heldout" split (never trained on), one item per window of probe.window (or data.window)
samples; the frozen features the episodic evaluation compares are those of the speaker probe.

Shapes: M windows, L samples per window, T frames, D feature dim.
"""
import numpy as np

from seqcpc.audio.features import extractors_for, read_windows, window_specs
from seqcpc.errors import DataError
from seqcpc.eval.probes import random_subset
from seqcpc.fewshot.evaluate import EpisodeData

BASE_SAMPLE = 1000  # training-speaker windows whose mean feature centres the frozen features


def audio_episode_data(cfg, log=print) -> EpisodeData:
    if not cfg.data.manifest:
        raise DataError("few-shot speaker episodes read a speech corpus: data.manifest=PATH (with data.kind=shards, "
                        "by default the corpus the shards were packed from)")
    probe, sr = cfg.probe, cfg.data.sample_rate
    window = probe.window or cfg.data.window
    specs = {split: window_specs(cfg.data.manifest, split, window, sr, probe.windows_per_utterance,
                                 probe.utterances_per_speaker, cfg.data.allow_outside_paths)
             for split in ("heldout", "train")}
    if not specs["heldout"]:
        raise DataError(f"{cfg.data.manifest} has no utterance of {window} samples or more in its 'heldout' split: "
                        f"few-shot episodes need speakers that were never trained on")
    speakers, labels = np.unique([w.speaker for w in specs["heldout"]], return_inverse=True)
    base = [specs["train"][i] for i in random_subset(len(specs["train"]), BASE_SAMPLE, cfg.train.seed)]
    log(f"episodic evaluation: {len(labels)} windows of {len(speakers)} held-out speakers")
    return EpisodeData(read_windows(specs["heldout"], window, sr)[:, None], labels,  # (M, 1, L): as the encoder reads
                       read_windows(base, window, sr)[:, None], "windows")


def audio_frozen_features(cfg, model) -> dict:
    """A CPC model's context features, the same network untrained and MFCCs, each averaged over the window."""
    frames = extractors_for(cfg, model, cfg.data.sample_rate)  # name -> waves (B, L) -> (B, T, D)
    return {name: (lambda x, fn=fn: fn(x[:, 0]).mean(1)) for name, fn in frames.items()}
