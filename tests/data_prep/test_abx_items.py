import numpy as np
import pytest

from data_prep import abx_items
from seqcpc.audio.manifest import Utterance, write_manifest, write_phones
from seqcpc.errors import DataError, report_errors
from seqcpc.eval.abx import Item, read_items

VOCAB = ["sil", "a", "b", "c"]


def tiny_corpus(folder, vocab=True):
    """Three utterances of two speakers (u3 in train) with frame labels; no audio is needed for items."""
    rows = [Utterance(uid, f"{uid}.flac", spk, split, 0.1, 16000, 1, 1600)
            for uid, spk, split in (("u1", "s1", "test"), ("u2", "s1", "test"), ("u3", "s2", "train"),
                                    ("u4", "s2", "test"))]
    write_manifest(folder / "manifest.tsv", rows)
    write_phones(folder / "phones.txt", {"u1": [0, 0, 1, 1, 1, 2, 3, 3, 0],  # sil a a a b c c sil
                                         "u2": [1, 0, 0, 2, 1],  # a sil sil b a: a silence in the middle
                                         "u3": [0, 1, 2, 3, 0],
                                         "u4": [0, 3, 3, 1, 0]})  # sil c c a sil
    if vocab:
        (folder / "phones_vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return folder / "manifest.tsv"


def test_segments_are_runs_of_equal_labels():
    assert abx_items.segments([]) == []
    assert abx_items.segments(np.array([5, 5, 2, 2, 2, 5])) == [(0, 2, 5), (2, 5, 2), (5, 6, 5)]


def test_items_are_inner_segments_with_their_neighbours(tmp_path):
    manifest = tiny_corpus(tmp_path)
    out = tmp_path / "test.item"
    assert abx_items.build(manifest, "test", out, log=lambda *_: None) == 6
    assert out.read_text().splitlines() == [
        "#file onset offset #phone prev-phone next-phone speaker",
        "u1 0.02 0.05 a sil b s1",  # the first (sil) and last (sil) segments have no context
        "u1 0.05 0.06 b a c s1",
        "u1 0.06 0.08 c b sil s1",
        "u2 0.03 0.04 b sil a s1",  # the middle silence is a context, not an item
        "u4 0.01 0.03 c sil a s2",  # u3 is a train utterance
        "u4 0.03 0.04 a c sil s2"]
    assert read_items(out)[0] == Item("u1", 0.02, 0.05, "a", "sil", "b", "s1")


def test_options_keep_silence_cap_speakers_and_work_without_a_vocabulary(tmp_path):
    manifest = tiny_corpus(tmp_path, vocab=False)
    out = tmp_path / "test.item"
    abx_items.main(["--manifest", str(manifest), "--split", "test", "--out", str(out), "--max-per-speaker", "1",
                    "--keep-silence"], log=lambda *_: None)
    assert [line.split()[:4] for line in out.read_text().splitlines()[1:]] == [
        ["u1", "0.02", "0.05", "1"], ["u1", "0.05", "0.06", "2"], ["u1", "0.06", "0.08", "3"],  # u2 is s1's second
        ["u4", "0.01", "0.03", "3"], ["u4", "0.03", "0.04", "1"]]
    abx_items.main(["--manifest", str(manifest), "--split", "test", "--out", str(out), "--keep-silence"],
                   log=lambda *_: None)
    assert "u2 0.01 0.03 0 1 2 s1" in out.read_text()  # with --keep-silence the silence is an item


def test_a_second_run_writes_the_same_file(tmp_path):
    manifest = tiny_corpus(tmp_path)
    out = tmp_path / "test.item"
    abx_items.build(manifest, "test", out, log=lambda *_: None)
    first = out.read_bytes()
    abx_items.build(manifest, "test", out, log=lambda *_: None)
    assert out.read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("test.item")) == ["test.item"]


def test_clear_errors(tmp_path, capsys):
    manifest = tiny_corpus(tmp_path)
    out = tmp_path / "x.item"
    with pytest.raises(DataError, match="split 'heldout'"):
        abx_items.build(manifest, "heldout", out)
    write_phones(tmp_path / "phones.txt", {"u1": [1, 1, 2]})  # two segments: nothing between two others
    with pytest.raises(DataError, match="no utterance of split 'test' has a phone between two others"):
        abx_items.build(manifest, "test", out)
    write_phones(tmp_path / "phones.txt", {"u1": [0, 7, 0]})
    with pytest.raises(DataError, match="phone index 7 has no symbol"):
        abx_items.build(manifest, "test", out)
    (tmp_path / "phones.txt").unlink()
    args = ["--manifest", str(manifest), "--out", str(out)]
    assert report_errors(lambda: abx_items.main(args), "data_prep.abx_items") == 1
    assert "phones.txt does not exist" in capsys.readouterr().err
    assert not out.exists()
