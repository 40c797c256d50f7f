"""data_prep/shards.py: a prepared corpus packed into tar shards of equal utterance counts, every utterance once
with its audio bytes and frame labels, in shuffled or speaker order; reruns redo the packing; bad input refused."""
import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from audio_fixtures import toy_speech_corpus
from conftest import ROOT
from data_prep.shards import main
from seqcpc.audio.manifest import read_manifest, read_phones
from seqcpc.audio.shards import read_index, read_items
from seqcpc.errors import DataError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return toy_speech_corpus(tmp_path_factory.mktemp("corpus") / "c", speakers=4, heldout=1, utts=8).parent


def members(tar) -> dict:
    with tarfile.open(tar) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers()}


def test_every_utterance_is_packed_once_with_its_bytes_and_labels_in_shards_of_equal_size(corpus, tmp_path):
    out = tmp_path / "shards"
    assert main(["--corpus", str(corpus), "--out", str(out), "--shard-mb", "0.1"]) == 0
    index = read_index(out)
    rows = {r.id: r for r in read_manifest(corpus / "manifest.tsv")}
    phones = read_phones(corpus / "phones.txt")
    for split in ("train", "test"):
        entries = index["splits"][split]
        sizes = [e["items"] for e in entries]
        assert len(entries) > 2 and max(sizes) - min(sizes) <= 1
        packed = []
        for e in entries:
            items, files = read_items(out, e["tar"], 16000), members(out / e["tar"])
            assert len(items) == e["items"] and sum(e["speakers"].values()) == e["items"]
            for item in items:
                row = rows[item.id]
                assert files[f"{item.key}.flac"] == (corpus / row.path).read_bytes()  # the file as it is
                assert json.loads(files[f"{item.key}.json"])["speaker"] == row.speaker == item.speaker
                assert np.array_equal(np.frombuffer(files[f"{item.key}.phones"], "<i2"), phones[item.id])
            packed += [item.id for item in items]
        assert sorted(packed) == sorted(i for i, r in rows.items() if r.split == split)
    assert index["speakers"] == sorted({r.speaker for r in rows.values() if r.split == "train"})
    assert index["phone_max"] == 3 and "heldout" not in index["splits"]


def test_speaker_order_keeps_each_speaker_together_and_shuffled_order_spreads_them(corpus, tmp_path):
    spread = {}
    for order in ("speaker", "shuffled"):
        main(["--corpus", str(corpus), "--out", str(tmp_path / order), "--shard-mb", "0.1", "--order", order])
        entries = read_index(tmp_path / order)["splits"]["train"]
        spread[order] = np.mean([len(e["speakers"]) for e in entries])
        speakers = [i.speaker for e in entries for i in read_items(tmp_path / order, e["tar"], 16000)]
        if order == "speaker":
            assert speakers == sorted(speakers)
    assert spread["shuffled"] > spread["speaker"]


def test_a_rerun_redoes_the_packing_and_leaves_no_shard_of_the_last_one(corpus, tmp_path):
    out = tmp_path / "shards"
    main(["--corpus", str(corpus), "--out", str(out), "--shard-mb", "0.05"])
    many = len(list((out / "train").glob("*.tar")))
    main(["--corpus", str(corpus), "--out", str(out), "--shard-mb", "10"])
    assert many > 1 and sorted(p.name for p in (out / "train").iterdir()) == ["shard-000000.tar", "shard-000000.tsv"]


def test_bad_input_is_refused_before_anything_is_written(corpus, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "data_prep.shards", "--corpus", str(tmp_path / "nothing"), "--out",
                           str(tmp_path / "a")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "manifest" in proc.stderr, proc.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="does not write"):
        main(["--corpus", str(corpus), "--out", str(tmp_path / "mine")])
    with pytest.raises(SystemExit):
        main(["--corpus", str(corpus), "--out", str(tmp_path / "b"), "--shard-mb", "0"])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me" and not (tmp_path / "a").exists()
