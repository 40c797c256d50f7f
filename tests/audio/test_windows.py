import numpy as np
import pytest
import torch

from audio_fixtures import tone, write
from seqcpc.audio.manifest import Utterance, write_manifest
from seqcpc.errors import DataError
from seqcpc.audio.windows import GroupBatchSampler, WindowDataset


@pytest.fixture
def corpus(tmp_path):
    rows = []
    for i, (spk, secs, rate, ch) in enumerate([("a", 1.0, 16000, 1), ("a", 0.5, 16000, 1), ("b", 2.0, 44100, 2),
                                                ("b", 0.05, 16000, 1), ("c", 1.0, 16000, 1)]):
        write(tmp_path / f"{i}.flac", tone(secs, rate=rate, channels=ch, seed=i), rate=rate)
        rows.append(Utterance(f"u{i}", f"{i}.flac", spk, "train", secs, rate, ch, int(secs * rate)))
    write_manifest(tmp_path / "manifest.tsv", rows)
    return tmp_path / "manifest.tsv"


def test_windows_mix_rates_and_channels_and_skip_short_clips(corpus):
    ds = WindowDataset(corpus, ["train"], window=4000, sample_rate=16000)
    assert len(ds) == 4 and ds.skipped_short == 1  # the 0.05 s clip
    assert ds.speakers == ["a", "b", "c"]
    for i in range(len(ds)):
        x, g = ds[i]
        assert x.shape == (1, 4000) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert ds.groups.tolist() == [0, 0, 1, 2]


def test_windows_are_fixed_per_epoch_and_move_between_epochs(corpus):
    ds = WindowDataset(corpus, ["train"], window=4000, sample_rate=16000, seed=1)
    first = ds[2][0]
    torch.testing.assert_close(ds[2][0], first)
    ds.set_epoch(1)
    assert not torch.equal(ds[2][0], first)


def test_a_window_longer_than_every_clip_is_refused(corpus):
    with pytest.raises(DataError, match="no usable utterance among the 5 of train: 5 are shorter"):
        WindowDataset(corpus, ["train"], window=10 ** 6, sample_rate=16000)


def test_speaker_batches_hold_one_speaker_and_split_across_ranks():
    groups = np.repeat(np.arange(5), [9, 8, 3, 16, 8])
    seen = []
    for rank in range(2):
        sampler = GroupBatchSampler(groups, 4, num_replicas=2, rank=rank, seed=0)
        batches = list(sampler)
        assert len(batches) == len(sampler) > 0
        for b in batches:
            assert len(b) == 4 and len(set(groups[np.asarray(b) % len(groups)])) == 1  # extra windows: r * N + i
        seen.append({tuple(b) for b in batches})
    assert not seen[0] & seen[1]
    sampler = GroupBatchSampler(groups, 4, seed=0)
    full = list(sampler)
    sampler.set_position(0, 3)
    assert list(sampler) == full[3:]
    sampler.set_position(1)
    assert list(sampler) != full


def test_small_groups_are_topped_up_with_new_windows_never_the_same_one(corpus):
    ds = WindowDataset(corpus, ["train"], window=4000, sample_rate=16000)
    sampler = GroupBatchSampler(np.arange(len(ds)), 3, seed=0, dataset=ds)  # one utterance a batch
    batches = list(sampler)
    assert len(batches) == len(ds)
    for b in batches:
        assert len({i % len(ds) for i in b}) == 1  # one utterance
        windows = [ds[i][0] for i in b]
        assert not torch.equal(windows[0], windows[1]) and not torch.equal(windows[1], windows[2])


def test_memory_grows_with_rows_not_with_audio(tmp_path):
    """The issue's 10x-manifest check: the dataset keeps a few fields per row and never the audio."""
    import tracemalloc

    write(tmp_path / "long.flac", tone(20.0), rate=16000)  # 20 s, 1.3 MB as float32
    held = {}
    for n in (100, 1000):
        rows = [Utterance(f"u{i}", "../long.flac", f"s{i % 10}", "train", 20.0, 16000, 1, 320000) for i in range(n)]
        (tmp_path / f"m{n}").mkdir()
        write_manifest(tmp_path / f"m{n}" / "manifest.tsv", rows)
        (tmp_path / f"m{n}" / "audio_roots.txt").write_text(f"{tmp_path}\n")
        tracemalloc.start()
        ds = WindowDataset(tmp_path / f"m{n}" / "manifest.tsv", ["train"], 16000, 16000)
        ds[0], ds[n - 1]
        held[n] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert len(ds) == n
    per_row = (held[1000] - held[100]) / 900
    assert per_row < 1000, f"{per_row:.0f} bytes per manifest row"  # 20 s of audio would be 1.3 MB
