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


def toy_speech_corpus(out, speakers=6, heldout=5, utts=6, seconds=1.5, rate=16000, seed=0):
    """Utterances made of 'phones' (tones of 4 pitches, 50-150 ms each) scaled by a per-speaker pitch, with
    manifest.tsv and phones.txt: enough structure for probes to beat chance. Returns the manifest path."""
    from seqcpc.audio.manifest import Utterance, write_manifest, write_phones

    out = Path(out)
    rng = np.random.default_rng(seed)
    rows, labels = [], {}
    for s in range(speakers + heldout):
        factor = 0.7 + 0.6 * s / (speakers + heldout)
        for u in range(utts):
            x, lab = [], []
            while sum(map(len, x)) < seconds * rate:
                phone, n = int(rng.integers(4)), int(rng.integers(5, 16)) * rate // 100
                t = np.arange(n) / rate
                x.append(0.3 * np.sin(2 * np.pi * factor * (200 + 150 * phone) * t))
                lab += [phone] * (n * 100 // rate)
            wave = np.concatenate(x)[: int(seconds * rate)] + 0.01 * rng.standard_normal(int(seconds * rate))
            uid = f"s{s}_u{u}"
            write(out / f"s{s}" / f"{uid}.flac", wave, rate)
            split = "heldout" if s >= speakers else ("test" if u < 2 else "train")
            rows.append(Utterance(uid, f"s{s}/{uid}.flac", f"s{s}", split, seconds, rate, 1, len(wave)))
            labels[uid] = lab[: int(seconds * 100)]
    write_manifest(out / "manifest.tsv", rows)
    write_phones(out / "phones.txt", labels)
    return out / "manifest.tsv"
