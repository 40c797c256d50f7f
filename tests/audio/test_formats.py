"""Every format libsndfile reads, at the rates corpora come in, mono and stereo, read as windows at 16 kHz.

Tolerances: a window read at an offset is compared with the same span of the whole file read and resampled at
once. Once the read starts on both rates' grid and covers the resampler's filter, the two differ only by
float32 rounding inside soxr (measured below 3e-7), so 1e-5 is strict: a seek that lands a few samples off, or
a span resampled without its margin, is off by 1e-2 to the full amplitude 0.3.
"""
import numpy as np
import pytest
import soundfile as sf

from seqcpc.audio.io import AUDIO_EXTENSIONS, UNREADABLE_EXTENSIONS, AudioError, audio_info, read_audio

TARGET = 16000
# name -> (extension, format, subtype, rates the encoder takes)
FORMATS = {"wav16": (".wav", "WAV", "PCM_16", None), "wav_float": (".wav", "WAV", "FLOAT", None),
           "flac": (".flac", "FLAC", "PCM_16", None), "vorbis": (".ogg", "OGG", "VORBIS", None),
           "opus": (".opus", "OGG", "OPUS", (8000, 16000, 48000)), "mp3": (".mp3", "MP3", "MPEG_LAYER_III", None)}
RATES = (8000, 22050, 44100, 48000)
CASES = [(name, rate, channels) for name, (_, _, _, rates) in FORMATS.items() for rate in RATES
         if rates is None or rate in rates for channels in (1, 2)]
FREQS = (500.0, 1500.0)  # left and right channel tones; a mono file holds the first


def synth(path, name, seconds, rate, channels, noise=0.0, seed=0):
    """A tone per channel (plus optional noise) written in format `name`; returns the path."""
    ext, fmt, subtype, _ = FORMATS[name]
    t = np.arange(int(seconds * rate)) / rate
    x = np.stack([0.3 * np.sin(2 * np.pi * f * t) for f in FREQS[:channels]], axis=1)  # (L, channels)
    x += noise * np.random.default_rng(seed).standard_normal(x.shape)
    path = path.with_suffix(ext)
    sf.write(str(path), x, rate, format=fmt, subtype=subtype)
    return path


def peaks(x, rate, count):
    """The `count` strongest frequencies of x (Hz)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    found = []
    for i in np.argsort(spectrum)[::-1]:  # strongest first, skipping the leakage bins around a peak found
        if all(abs(freqs[i] - f) > 50 for f in found):
            found.append(freqs[i])
        if len(found) == count:
            return sorted(found)


@pytest.mark.parametrize("name,rate,channels", CASES)
def test_each_format_rate_and_layout_reads_exact_windows_at_16k(tmp_path, name, rate, channels):
    path = synth(tmp_path / "clip", name, 0.3, rate, channels)
    assert audio_info(path) == (rate, channels, int(0.3 * rate))
    full = read_audio(path, sample_rate=TARGET)  # (L,)
    assert full.dtype == np.float32 and len(full) == round(0.3 * rate * TARGET / rate)
    window = 2048
    for start in (0, 731, len(full) - window):  # the last one ends on the file's last sample
        x = read_audio(path, start, window, TARGET)
        assert x.shape == (window,)
        np.testing.assert_allclose(x, full[start:start + window], atol=1e-5)
    # resampling keeps each tone's frequency; stereo is averaged, so both channels' tones are heard
    bin_hz = TARGET / window
    np.testing.assert_allclose(peaks(x, TARGET, channels), FREQS[:channels], atol=bin_hz)


@pytest.mark.parametrize("name", ["vorbis", "opus", "mp3"])
def test_lossy_formats_read_the_same_span_at_any_offset(tmp_path, name):
    """libsndfile seeks in Ogg and MP3 are not exact (into Ogg's last page, and for a dozen MP3 frames after the
    seek point); windows there must still be the very samples a full decode gives."""
    path = synth(tmp_path / "long", name, 3.0, TARGET, 1, noise=0.05)
    full = read_audio(path)
    starts = [0, 1000, len(full) // 2, *range(len(full) - 6000, len(full) - 300, 450)]
    for start in starts:
        np.testing.assert_allclose(read_audio(path, start, 300), full[start:start + 300], atol=1e-6,
                                   err_msg=f"{name} window at {start}")


def test_mp3_length_is_what_decodes(tmp_path):
    """The manifest takes a file's length from soundfile's header count; for MP3 it must be what decodes, or a
    window at the end of a file would come up short."""
    for rate in RATES:
        path = synth(tmp_path / f"m{rate}", "mp3", 0.7, rate, 2)
        with sf.SoundFile(str(path)) as f:
            decoded = sum(len(block) for block in f.blocks(4096))
        assert audio_info(path)[2] == decoded == int(0.7 * rate)


def test_readable_extensions_follow_the_installed_libsndfile():
    assert {".wav", ".flac", ".ogg", ".opus"} <= set(AUDIO_EXTENSIONS)
    assert (".mp3" in AUDIO_EXTENSIONS) == ("MP3" in sf.available_formats())
    assert not set(AUDIO_EXTENSIONS) & set(UNREADABLE_EXTENSIONS)
    assert {".m4a", ".aac", ".wma"} <= set(UNREADABLE_EXTENSIONS)


@pytest.mark.parametrize("suffix", [".m4a", ".aac", ".wma"])
def test_a_format_libsndfile_cannot_read_says_how_to_convert_it(tmp_path, suffix):
    path = tmp_path / f"talk{suffix}"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + bytes(64))  # an MP4 audio header
    for read in (audio_info, read_audio):
        with pytest.raises(AudioError, match=rf"talk\{suffix}: libsndfile .* cannot read \{suffix}.*ffmpeg"):
            read(path)


def test_probing_at_another_rate_than_the_model_was_trained_at_is_refused(tmp_path, capsys, rate=8000):
    from audio_fixtures import toy_speech_corpus
    from conftest import cli

    manifest = toy_speech_corpus(tmp_path / "c", speakers=2, heldout=0, utts=4, seconds=1.0)
    run = tmp_path / "run"
    code, _, err = cli(capsys, "pretrain", "data.kind=manifest", f"data.manifest={manifest}", "model.size=audio_paper",
                       "model.encoder.dim=16", "model.context.dim=16", "objective.predictor.steps=4",
                       "objective.loss.num_negatives=16", "data.window=8000", "data.batch_size=4", "train.max_steps=1",
                       "train.val_every=1", "train.val_batches=1", f"train.out_dir={run}")
    assert code == 0, err
    code, _, err = cli(capsys, "probe", "--checkpoint", run / "checkpoints" / "last.ckpt", "--out", tmp_path / "p",
                       f"data.sample_rate={rate}")
    assert code == 1 and f"data.sample_rate={rate} but the model was trained at 16000 Hz" in err
    assert "Traceback" not in err and not (tmp_path / "p" / "results.json").exists()
