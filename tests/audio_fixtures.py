"""Tiny audio corpora written by the tests themselves."""
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds, rate=16000, freq=220.0, channels=1, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write(path, x, rate=16000):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, rate)
    return path


def librispeech_tree(root, speakers=("19", "26"), chapters=("198",), utts=3, seconds=1.5):
    for spk in speakers:
        for chap in chapters:
            for u in range(utts):
                write(Path(root) / spk / chap / f"{spk}-{chap}-{u:04d}.flac",
                      tone(seconds, freq=150 + 40 * int(spk) % 300 + 7 * u, seed=u))
    return Path(root)
