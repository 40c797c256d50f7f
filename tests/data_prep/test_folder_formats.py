"""A folder corpus of mixed formats, rates and channel layouts, nested folders and unicode names, prepared with
data_prep.folder and read as 16 kHz training windows."""
import numpy as np
import pytest
import soundfile as sf

from data_prep import folder
from seqcpc.audio.manifest import read_manifest
from seqcpc.audio.windows import WindowDataset
from seqcpc.errors import DataError

SECONDS, WINDOW = 0.4, 4000  # 6400 samples at 16 kHz: every clip gives a window
FREQS = (500.0, 1500.0)  # left and right channel tones
# path under the root -> (format, subtype, rate, channels)
CORPUS = {"alice/ch1/a.wav": ("WAV", "PCM_16", 22050, 2),
          "alice/ch2/deep/b.flac": ("FLAC", "PCM_16", 48000, 1),
          "Bjørn Ødegård/first take.mp3": ("MP3", "MPEG_LAYER_III", 44100, 2),
          "Bjørn Ødegård/c.ogg": ("OGG", "VORBIS", 8000, 1),
          "carol/d.opus": ("OGG", "OPUS", 48000, 2),
          "carol/e.wav": ("WAV", "FLOAT", 44100, 1)}


def build(root, extra=()):
    for rel, (fmt, subtype, rate, channels) in CORPUS.items():
        t = np.arange(int(SECONDS * rate)) / rate
        x = np.stack([0.3 * np.sin(2 * np.pi * f * t) for f in FREQS[:channels]], axis=1)  # (L, channels)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(root / rel), x, rate, format=fmt, subtype=subtype)
    (root / "carol" / "notes.txt").write_text("not audio")
    for rel in extra:  # an MP4 audio header: a format libsndfile cannot read
        (root / rel).write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + bytes(64))
    return root


def test_mixed_formats_become_a_manifest_and_16k_windows(tmp_path):
    root = build(tmp_path / "corpus", extra=["carol/lecture.m4a"])
    result = folder.main(["--root", str(root), "--out", str(tmp_path / "prep"), "--test-fraction", "0.5"])
    rows = {r.id: r for r in read_manifest(result.manifest)}
    assert set(rows) == {"alice/ch1/a", "alice/ch2/deep/b", "Bjørn_Ødegård/first_take", "Bjørn_Ødegård/c",
                         "carol/d", "carol/e"}
    for rel, (_, _, rate, channels) in CORPUS.items():
        row = rows[rel.rsplit(".", 1)[0].replace(" ", "_")]
        assert row.speaker == rel.split("/")[0]  # the first folder, however deep the file
        assert (row.sample_rate, row.channels, row.num_samples) == (rate, channels, int(SECONDS * rate))
        assert (tmp_path / "prep" / "audio_roots.txt").read_text().strip() in str(root / rel)
    report = (tmp_path / "prep" / "prep_report.txt").read_text()
    assert "6 utterances written, 1 files skipped" in report and "lecture.m4a" in report and "ffmpeg" in report

    data = WindowDataset(result.manifest, ["train", "test"], window=WINDOW, sample_rate=16000)
    assert sorted(data.ids) == sorted(rows) and not data.bad_files
    spectrum_freqs = np.fft.rfftfreq(WINDOW, 1 / 16000)
    for i, uid in enumerate(data.ids):
        x, group = data[i]
        assert x.shape == (1, WINDOW) and data.speakers[group] == rows[uid].speaker
        spectrum = np.abs(np.fft.rfft(x[0].numpy() * np.hanning(WINDOW)))
        for f in FREQS[:rows[uid].channels]:  # each channel's tone survives resampling and the stereo average
            near = np.abs(spectrum_freqs - f) < 100
            assert spectrum[near].max() > 0.3 * spectrum.max(), f"{uid}: no {f} Hz tone"
            assert abs(spectrum_freqs[near][np.argmax(spectrum[near])] - f) <= 16000 / WINDOW


def test_an_unreadable_format_stops_the_preparation_when_asked(tmp_path):
    root = build(tmp_path / "corpus", extra=["alice/ch1/talk.wma"])
    with pytest.raises(DataError, match=r"talk\.wma: libsndfile .* cannot read \.wma files; convert .*ffmpeg"):
        folder.main(["--root", str(root), "--out", str(tmp_path / "p"), "--on-error", "stop"])
    assert not (tmp_path / "p" / "manifest.tsv").exists()


def test_a_corpus_only_of_unreadable_formats_says_why(tmp_path):
    root = tmp_path / "corpus"
    (root / "dan").mkdir(parents=True)
    (root / "dan" / "x.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + bytes(64))
    with pytest.raises(DataError, match=r"none of the 1 audio files .*/x\.m4a: .*ffmpeg"):
        folder.main(["--root", str(root), "--out", str(tmp_path / "p")])


def test_a_folder_without_audio_lists_what_is_looked_for(tmp_path):
    (tmp_path / "corpus" / "alice").mkdir(parents=True)
    (tmp_path / "corpus" / "alice" / "readme.txt").write_text("no audio")
    with pytest.raises(DataError, match=r"no \.wav/\.flac/\.ogg files \(nor .*\.mp3.*\) under .*one folder per"):
        folder.main(["--root", str(tmp_path / "corpus"), "--out", str(tmp_path / "p")])
