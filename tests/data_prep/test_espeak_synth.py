import hashlib
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_prep.espeak_synth import SILENCE, Voice, frame_labels, list_languages, list_variants, synthesize

ROOT = Path(__file__).resolve().parents[1]
TEXT = "The juice of lemons makes fine punch."
VOICE = Voice("en-gb", "m3", pitch=50, rate=175)


def digest(text: str, voice: Voice) -> tuple[str, list[tuple[str, int]]]:
    audio, _, phones = synthesize(text, voice)
    return hashlib.sha256(audio.tobytes()).hexdigest(), phones


def test_audio_is_finite_float32_at_native_rate():
    audio, rate, phones = synthesize(TEXT, VOICE)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert rate == 22050 and 1.0 < audio.size / rate < 5.0
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0.05
    assert "sil" in {p for p, _ in phones} and {"dZ", "u:", "s"} <= {p for p, _ in phones}


def test_deterministic_within_process():
    first = digest(TEXT, VOICE)
    synthesize("Something else, in another voice.", Voice("en-us", "klatt3", pitch=80, rate=300, range=90))
    assert digest(TEXT, VOICE) == first
    assert digest(TEXT, VOICE) == first


def test_deterministic_across_processes():
    code = ("import hashlib; from data_prep.espeak_synth import Voice, synthesize; "
            f"a, _, p = synthesize({TEXT!r}, Voice('en-gb', 'm3', pitch=50, rate=175)); "
            "print(hashlib.sha256(a.tobytes()).hexdigest(), p)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env=env, timeout=60).stdout.split(maxsplit=1)
    sha, phones = digest(TEXT, VOICE)
    assert out == [sha, f"{phones}\n"]


def test_worker_processes_agree_with_main_process():
    jobs = [(TEXT, VOICE), ("Four hours of steady work faced us.", Voice("en-us", None, pitch=30, rate=140))]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        in_workers = pool.starmap(digest, jobs)
    assert in_workers == [digest(*job) for job in jobs]


def test_alignment_is_sorted_and_inside_audio():
    for voice in (VOICE, Voice("en-us", None, pitch=70, rate=320)):
        audio, _, phones = synthesize("Hello there. Whose shoes are those beneath the chair?", voice)
        starts = [start for _, start in phones]
        assert starts[0] == 0 and starts == sorted(set(starts)) and starts[-1] < audio.size
        assert all(label and not label.startswith(("_", "'", ",")) for label, _ in phones)


def test_frame_labels_cover_the_audio():
    audio, rate, phones = synthesize(TEXT, VOICE)
    labels = frame_labels(phones, audio.size, rate)
    assert len(labels) == audio.size // round(rate * 0.01)
    assert labels[0] == SILENCE and set(labels) <= {label for label, _ in phones}
    assert frame_labels([("a", 300), ("b", 500)], 1000, 1000, hop_s=0.1) == ["sil", "sil", "sil", "a", "a",
                                                                            "b", "b", "b", "b", "b"]


def test_pitch_changes_audio():
    low, _, _ = synthesize(TEXT, Voice("en-gb", "m3", pitch=20, rate=175))
    high, _, _ = synthesize(TEXT, Voice("en-gb", "m3", pitch=80, rate=175))
    assert low.shape != high.shape or not np.array_equal(low, high)


def test_list_variants_excludes_breathy_ones():
    variants = list_variants()
    assert {"m3", "f1", "klatt", "Storm"} <= set(variants)  # Storm's breath line is all zeros
    assert not {"whisper", "f2", "f5", "caleb"} & set(variants)
    with pytest.raises(ValueError, match="whisper"):
        synthesize(TEXT, Voice("en-us", "whisper", pitch=50, rate=175))


def test_unknown_voice_raises_value_error():
    assert {"en-us", "en-gb", "en-gb-scotland"} <= set(list_languages())
    with pytest.raises(ValueError, match="xx-nowhere"):
        synthesize(TEXT, Voice("xx-nowhere", None, pitch=50, rate=175))
    with pytest.raises(ValueError, match="nobody"):
        synthesize(TEXT, Voice("en-us", "nobody", pitch=50, rate=175))
    with pytest.raises(ValueError, match="rate"):
        synthesize(TEXT, Voice("en-us", None, pitch=50, rate=10))
