"""Audio file IO with soundfile: read a span of a file as mono float32 at the corpus sample rate.

Only the requested span is decoded, so a window costs the same whatever the file's length. A file at
another rate is read over the matching span and resampled (soxr, through librosa); stereo is averaged to
mono. Every failure names the file.
"""
from pathlib import Path

import numpy as np
import soundfile as sf

from seqcpc.errors import DataError
from seqcpc.files import atomic_write

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


class AudioError(DataError):
    pass


def audio_info(path) -> tuple[int, int, int]:
    """(sample_rate, channels, frames) of an audio file, checked to be usable."""
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises several types for unreadable files
        raise AudioError(f"{path}: not a readable audio file ({err})") from err
    if info.frames <= 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    return info.samplerate, info.channels, info.frames


def usable_audio_info(path, on_error: str, skipped: list):
    """audio_info(path); for an unusable file, None after adding the reason to `skipped` (on_error="skip"),
    or the AudioError naming the file (on_error="stop")."""
    try:
        return audio_info(path)
    except AudioError as err:
        if on_error == "stop":
            raise
        skipped.append(str(err))
        return None


def read_audio(path, start: int = 0, frames: int = -1, sample_rate: int | None = None) -> np.ndarray:
    """Samples [start, start + frames) of `path` at `sample_rate` (the file's own if None): (L,) float32."""
    path = Path(path)
    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            if sample_rate is None or sample_rate == rate:
                f.seek(start)
                x = f.read(frames, dtype="float32", always_2d=True)  # (L, channels)
            else:
                # read the same span at the file's rate (plus a margin for the resampler), then resample
                f.seek(int(start * rate / sample_rate))
                src_frames = -1 if frames < 0 else int(np.ceil(frames * rate / sample_rate)) + 16
                x = f.read(src_frames, dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for unreadable or truncated files
        raise AudioError(f"{path}: could not read audio ({err})") from err
    x = x.mean(axis=1)  # (L,) mono
    if sample_rate is not None and sample_rate != rate and len(x):
        import librosa

        x = librosa.resample(x, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq").astype(np.float32)
    if frames >= 0:
        if len(x) < frames:
            raise AudioError(f"{path}: expected {frames} samples from {start}, the file ends after {len(x)} "
                             f"(truncated?)")
        x = x[:frames]
    if not np.isfinite(x).all():
        raise AudioError(f"{path}: holds NaN or infinite samples")
    return x


def write_flac(path, x: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio as 16-bit FLAC, atomically (temporary file + rename)."""
    atomic_write(path, lambda tmp: sf.write(str(tmp), np.clip(x, -1, 1), sample_rate, subtype="PCM_16",
                                            format="FLAC"))
