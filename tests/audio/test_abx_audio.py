import pytest
import torch

from audio_fixtures import toy_speech_corpus
from conftest import cli
from data_prep import abx_items
from layer_fixtures import save_layered_checkpoint
from seqcpc.audio.abx import abx_scores, item_features
from seqcpc.audio.features import MFCCFrames
from seqcpc.audio.probes import SpeechData, abx_probe
from seqcpc.config import resolve
from seqcpc.errors import DataError
from seqcpc.eval.abx import read_items
from seqcpc.eval.run import ProbeContext

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


def same(waves):  # (1, L) -> (1, T, 4): one frame everywhere, so every distance is exactly 0
    return E[0].repeat(1, waves.shape[1] // 160, 1)


def test_abx_scores_mfcc_on_a_toy_corpus(toy):
    manifest, item_path = toy
    items = read_items(item_path)
    res = abx_scores({"mfcc": MFCCFrames(13, 16000, 160), "same": same}, manifest, items, 16000, log=lambda *_: None)
    assert res["same"] == {"abx_within": 0.5, "abx_across": 0.5}
    # tones of 4 pitches; across, the second speaker says them 1.4 times higher, closer to other phones
    assert res["mfcc"]["abx_within"] < 0.1 and res["mfcc"]["abx_across"] < 0.45
    one_file = abx_scores({"same": same}, manifest, items, 16000, files_per_speaker=1, modes=("within",),
                          log=lambda *_: None)
    assert one_file == {"same": {"abx_within": 0.5}}


def test_items_of_another_corpus_are_refused(toy, tmp_path):
    manifest, _ = toy
    (tmp_path / "x.item").write_text("#file onset offset #phone prev-phone next-phone speaker\n"
                                     "nowhere 0.1 0.2 a b c s0\n")
    with pytest.raises(DataError, match="no row for item files"):
        item_features(lambda w: w[:, :, None], manifest, read_items(tmp_path / "x.item"), 16000)


HEADER = "#file onset offset #phone prev-phone next-phone speaker\n"


def probe_args(tmp_path, manifest, *overrides):
    """`seqcpc probe` of a tiny audio checkpoint on the corpus of `manifest`."""
    save_layered_checkpoint(tmp_path / "last.ckpt")
    return ("probe", "--checkpoint", tmp_path / "last.ckpt", "--out", tmp_path / "probe", "data.kind=manifest",
            f"data.manifest={manifest}", *overrides)


@pytest.mark.parametrize("text, words", [
    (None, ["probe.abx_items=", "does not exist"]),
    ("", ["holds no items"]),
    (HEADER, ["holds no items"]),
    ("s0_u2,0.1,0.2,a,b,c,s0\n", ["x.item:1: expected 7"]),
    (HEADER + "s0_u2 0.1 0.2 a b c s0\ns0_u2 0.3 inf a b c s0\n", ["x.item:3:", "not a time span"]),
    (HEADER + "s0_u2 0.1 0.2 a b c s0\ns0_u2 0.3 0.1 a b c s0\n", ["x.item:3:", "not a time span"]),
    (HEADER + "s0_u2 0.1 soon a b c s0\n", ["x.item:2:", "seconds"]),
    (b"\x80\x04\x95binary", ["x.item", "not text"]),
])
def test_an_item_file_given_that_cannot_be_read_stops_the_probes_first(toy, tmp_path, capsys, text, words):
    manifest, _ = toy
    item = tmp_path / "x.item"
    if text is not None:
        item.write_bytes(text if isinstance(text, bytes) else text.encode())
    code, out, err = cli(capsys, *probe_args(tmp_path, manifest, f"probe.abx_items={item}"))
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), err
    assert "[probe 1/" not in out  # stopped before the probes that take minutes, not after them


def test_a_bad_item_file_beside_the_manifest_stops_the_probes_too(tmp_path, capsys):
    manifest = toy_speech_corpus(tmp_path / "corpus", speakers=2, heldout=0, utts=3, seconds=0.5)
    (tmp_path / "corpus" / "abx_test.item").write_text(HEADER + "s0_u2 0.1 0.2 a b c\n")
    code, _, err = cli(capsys, *probe_args(tmp_path, manifest))
    assert code == 1 and "abx_test.item:2: expected 7" in err, err


def speech_context(manifest, out_dir, logs, **probe):
    cfg = resolve({"data": {"kind": "manifest", "manifest": str(manifest)}, "probe": probe})
    return ProbeContext(cfg, SpeechData(str(manifest), 16000, 8000, {"same": same}, False), out_dir, logs.append)


def test_only_an_absent_default_file_or_items_with_no_triplet_leave_abx_out(toy, tmp_path):
    manifest, item_path = toy
    logs = []
    assert abx_probe(speech_context(manifest, tmp_path, logs)) == {}
    assert any("ABX skipped" in line and "abx_test.item" in line for line in logs), logs
    (tmp_path / "one.item").write_text(HEADER + "s0_u2 0.1 0.2 a b c s0\n")
    assert abx_probe(speech_context(manifest, tmp_path, logs, abx_items=str(tmp_path / "one.item"))) == {}
    assert "no triplet" in logs[-1]
    (tmp_path / "other.item").write_text(HEADER + "nowhere 0.1 0.2 a b c s0\n")
    with pytest.raises(DataError, match="no row for item files"):  # the item file of another corpus
        abx_probe(speech_context(manifest, tmp_path, logs, abx_items=str(tmp_path / "other.item")))
    rows = abx_probe(speech_context(manifest, tmp_path, logs, abx_items=str(item_path)))["results"]
    assert rows == {"same": {"abx_within": 0.5, "abx_across": 0.5}}
