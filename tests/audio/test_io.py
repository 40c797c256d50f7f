import numpy as np
import pytest
import soundfile as sf

from audio_fixtures import tone, write
from seqcpc.audio.io import AudioError, audio_info, read_audio


def test_reads_a_span_as_mono_float32(tmp_path):
    x = tone(1.0, channels=2)
    path = write(tmp_path / "s.wav", x)
    assert audio_info(path) == (16000, 2, 16000)
    y = read_audio(path, 100, 500)
    assert y.dtype == np.float32 and y.shape == (500,)
    np.testing.assert_allclose(y, x[100:600].mean(1), atol=1e-4)


def test_resamples_a_file_at_another_rate(tmp_path):
    path = write(tmp_path / "s.flac", tone(1.0, rate=44100, freq=440), rate=44100)
    y = read_audio(path, 1600, 3200, sample_rate=16000)
    ref = tone(1.0, rate=16000, freq=440)[1600:4800]
    assert y.shape == (3200,)
    # same tone at the new rate (noise differs): correlation near 1
    assert np.corrcoef(y, ref)[0, 1] > 0.95


@pytest.mark.parametrize("content", [b"", b"not audio at all" * 10])
def test_unreadable_files_are_named(tmp_path, content):
    path = tmp_path / "bad.flac"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="bad.flac"):
        audio_info(path)
    with pytest.raises(AudioError, match="bad.flac"):
        read_audio(path)


def test_truncated_and_nan_files_are_named(tmp_path):
    path = write(tmp_path / "short.wav", tone(0.1))
    with pytest.raises(AudioError, match="short.wav.*truncated"):
        read_audio(path, 0, 16000)
    x = tone(0.5)
    x[100] = np.nan
    sf.write(str(tmp_path / "nan.wav"), x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: holds NaN"):
        read_audio(tmp_path / "nan.wav")
