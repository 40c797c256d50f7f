import pytest
import torch

from audio_fixtures import toy_speech_corpus
from data_prep import abx_items
from seqcpc.audio.abx import abx_scores, item_features
from seqcpc.audio.features import MFCCFrames
from seqcpc.errors import DataError
from seqcpc.eval.abx import read_items

E = torch.eye(4)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("abx")
    manifest = toy_speech_corpus(folder, speakers=2, heldout=0, utts=6)
    abx_items.build(manifest, "train", folder / "train.item", log=lambda *_: None)
    return manifest, folder / "train.item"


def test_item_features_are_the_frames_of_each_item_and_read_each_file_once(toy):
    manifest, item_path = toy
    items, calls = read_items(item_path), []

    def frame_index(waves):  # (1, L) -> (1, T, 1): each frame's index
        calls.append(waves.shape)
        return torch.arange(waves.shape[1] // 160, dtype=torch.float32)[None, :, None]

    feats = item_features(frame_index, manifest, items, 16000)
    assert len(calls) == len({i.file for i in items}) == 8  # 2 speakers x 4 train utterances
    for it, f in zip(items, feats):
        start, stop = round(it.onset * 100), round(it.offset * 100)
        assert f[:, 0].tolist() == list(range(start, stop))


def test_abx_scores_mfcc_on_a_toy_corpus(toy):
    manifest, item_path = toy
    same = lambda waves: E[0].repeat(1, waves.shape[1] // 160, 1)  # noqa: E731  (exact: distance 0 everywhere)
    res = abx_scores({"mfcc": MFCCFrames(13, 16000, 160), "same": same}, manifest, item_path, 16000,
                     log=lambda *_: None)
    assert res["same"] == {"abx_within": 0.5, "abx_across": 0.5}
    # tones of 4 pitches; across, the second speaker says them 1.4 times higher, closer to other phones
    assert res["mfcc"]["abx_within"] < 0.1 and res["mfcc"]["abx_across"] < 0.45
    one_file = abx_scores({"same": same}, manifest, item_path, 16000, files_per_speaker=1, modes=("within",),
                          log=lambda *_: None)
    assert one_file == {"same": {"abx_within": 0.5}}


def test_items_of_another_corpus_are_refused(toy, tmp_path):
    manifest, _ = toy
    (tmp_path / "x.item").write_text("#file onset offset #phone prev-phone next-phone speaker\n"
                                     "nowhere 0.1 0.2 a b c s0\n")
    with pytest.raises(DataError, match="no row for item files"):
        item_features(lambda w: w[:, :, None], manifest, read_items(tmp_path / "x.item"), 16000)
