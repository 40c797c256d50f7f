"""Audio file IO with soundfile: read a span of a file as mono float32 at the corpus sample rate.

Shapes: L samples; a file is read as (L, channels), and stereo is averaged to mono (L,).
Only the requested span is decoded where the format seeks exactly (WAV, FLAC, AIFF, ...), so a window costs
the same whatever the file's length. Ogg (Vorbis, Opus) and MP3 are decoded from the start of the file up to
the span's end, in one read: libsndfile 1.2 lands an Ogg seek into the last page up to a few hundred samples
off, and any seek in an MP3 (soundfile seeks after every read) makes the decoder output near-silence for up to
a dozen frames. A file at another rate is read over the span plus a margin, starting on a sample that lies on
both rates' grids, and resampled (soxr, through librosa), so a window equals the same span of the whole file
resampled. Every failure names the file.
"""
import io
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from seqcpc.errors import DataError
from seqcpc.files import atomic_write

# the file extensions of each container libsndfile reads, by its name in soundfile.available_formats()
FORMAT_EXTENSIONS = {"WAV": (".wav",), "FLAC": (".flac",), "OGG": (".ogg", ".oga", ".opus"), "MP3": (".mp3",),
                     "AIFF": (".aiff", ".aif", ".aifc"), "CAF": (".caf",), "W64": (".w64",), "RF64": (".rf64",),
                     "AU": (".au", ".snd"), "NIST": (".sph",)}
# audio that users have but libsndfile cannot decode (AAC and ALAC in MP4, WMA, ...): found and reported
FOREIGN_EXTENSIONS = (".m4a", ".m4b", ".aac", ".mp4", ".wma", ".webm", ".mka", ".amr", ".3gp", ".ape", ".wv",
                      ".ac3")
# the installed libsndfile decides: MP3 needs 1.1 or later, and an older one makes .mp3 a foreign extension
AUDIO_EXTENSIONS = tuple(ext for fmt, exts in FORMAT_EXTENSIONS.items() if fmt in sf.available_formats()
                         for ext in exts)
UNREADABLE_EXTENSIONS = FOREIGN_EXTENSIONS + tuple(ext for fmt, exts in FORMAT_EXTENSIONS.items()
                                                   if fmt not in sf.available_formats() for ext in exts)
SEEK_FROM_START = ("OGG", "MP3")  # containers whose seek is not sample-exact (see the module docstring)
RESAMPLE_MARGIN = 256  # samples at the lower rate read around a span: soxr_hq's filter reaches about 100


class AudioError(DataError):
    pass


def unreadable(path, err) -> AudioError:
    """The error for a file libsndfile could not open: a missing file or a folder is named as such (libsndfile
    says "System error."), and a known foreign format says how to convert it."""
    path = Path(path)
    if path.is_dir():
        return AudioError(f"{path} is a folder, not an audio file")
    if not path.exists():
        link = f" (a link to {path.readlink()})" if path.is_symlink() else ""
        return AudioError(f"audio file {path} does not exist{link}")
    suffix = path.suffix.lower()
    if suffix in UNREADABLE_EXTENSIONS:
        return AudioError(f"{path}: libsndfile {sf.__libsndfile_version__} cannot read {suffix} files; convert "
                          f"them to FLAC or WAV, e.g. ffmpeg -i 'in{suffix}' 'out.flac' ({err})")
    return AudioError(f"{path}: not a readable audio file ({err})")


def audio_info(path) -> tuple[int, int, int]:
    """(sample_rate, channels, frames) of an audio file, checked to be usable."""
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises several types for unreadable files
        raise unreadable(path, err) from err
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


def read_span(f: sf.SoundFile, start: int, frames: int) -> np.ndarray:
    """Frames [start, start + frames) of an open file (to its end if frames < 0): (L, channels) float32."""
    if f.format in SEEK_FROM_START:
        # one read from the start: soundfile seeks after every read to keep track of the position, and in
        # these formats that seek is the inexact step (in an MP3 it restarts the decoder)
        end = f.frames if frames < 0 else start + frames
        return f.read(end, dtype="float32", always_2d=True)[start:]
    f.seek(start)
    return f.read(frames, dtype="float32", always_2d=True)


def read_audio(path, start: int = 0, frames: int = -1, sample_rate: int | None = None,
               data: bytes | None = None) -> np.ndarray:
    """Samples [start, start + frames) of `path` at `sample_rate` (the file's own if None): (L,) float32. With
    `data`, the bytes of an audio file (e.g. a shard's member) are decoded instead, and `path` only names them."""
    path = Path(path) if data is None else path
    try:
        f = sf.SoundFile(io.BytesIO(data) if data is not None else str(path))
    except Exception as err:  # soundfile raises several types for unreadable files
        if data is not None:
            raise AudioError(f"{path}: not a readable audio file ({err})") from err
        raise unreadable(path, err) from err
    try:
        with f:
            rate = f.samplerate
            if sample_rate is None or sample_rate == rate:
                x, offset = read_span(f, start, frames), 0  # (L, channels)
            else:
                # the span at the file's rate, widened by a margin; `first` lies on both rates' grids so that
                # the resampled span's samples fall where the whole file's do
                step = rate // gcd(rate, sample_rate)
                margin = RESAMPLE_MARGIN * rate // min(rate, sample_rate)
                first = max(0, (start * rate // sample_rate - margin) // step * step)
                end = -(-(start + frames) * rate // sample_rate) + margin  # ceil: the span's last sample
                x = read_span(f, first, -1 if frames < 0 else end - first)
                offset = start - first * sample_rate // rate
    except Exception as err:  # soundfile raises several types for truncated files
        raise AudioError(f"{path}: could not read audio ({err})") from err
    x = x.mean(axis=1)  # (L,) mono
    if sample_rate is not None and sample_rate != rate and len(x):
        import librosa

        x = librosa.resample(x, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq").astype(np.float32)
    x = x[offset:]
    if frames >= 0:
        if len(x) < frames:
            raise AudioError(f"{path}: expected {frames} samples from {start}, only {len(x)} follow (truncated?)")
        x = x[:frames]
    if not np.isfinite(x).all():
        raise AudioError(f"{path}: holds NaN or infinite samples")
    return x


def write_flac(path, x: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio as 16-bit FLAC, atomically (temporary file + rename)."""
    atomic_write(path, lambda tmp: sf.write(str(tmp), np.clip(x, -1, 1), sample_rate, subtype="PCM_16",
                                            format="FLAC"))
