import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from data_prep import espeak_corpus
from seqcpc.audio.manifest import read_manifest, read_phones, read_vocab


def test_corpus_is_aligned_deterministic_and_idempotent(tmp_path):
    logs = []
    manifest = espeak_corpus.build(tmp_path / "a", speakers=3, heldout_speakers=1, utterances=5, workers=2,
                                   log=logs.append)
    rows = list(read_manifest(manifest))
    phones, vocab = read_phones(tmp_path / "a" / "phones.txt"), read_vocab(tmp_path / "a" / "phones_vocab.txt")
    assert len(rows) == 20 and len({r.speaker for r in rows}) == 4 and "sil" in vocab
    assert {r.split for r in rows if r.speaker == "spk003"} == {"heldout"}
    assert [r.split for r in rows if r.speaker == "spk000"] == ["train"] * 4 + ["test"]
    for r in rows:
        audio, rate = sf.read(tmp_path / "a" / r.path)
        assert rate == 16000 and len(audio) == r.num_samples and np.isfinite(audio).all()
        assert len(phones[r.id]) == r.num_samples // 160  # one label per 10 ms frame, exactly
        meta = json.loads(r.meta)
        assert {"pitch", "rate", "snr_db", "tilt", "text"} <= set(meta)
    pitches = {json.loads(r.meta)["pitch"] for r in rows if r.speaker == "spk000"}
    assert len(pitches) > 1  # per-utterance variation

    assert not (tmp_path / "a" / "speaker_counts.json").exists()  # --tail 0: balanced, as before --tail existed
    assert "tail" not in json.loads((tmp_path / "a" / "prep_fingerprint.txt").read_text())
    espeak_corpus.build(tmp_path / "a", speakers=3, heldout_speakers=1, utterances=5, workers=2, log=logs.append)
    assert "nothing to do" in logs[-1]
    espeak_corpus.build(tmp_path / "b", speakers=3, heldout_speakers=1, utterances=5, workers=2, log=logs.append)
    assert (tmp_path / "a" / "manifest.tsv").read_text() == (tmp_path / "b" / "manifest.tsv").read_text()
    first = rows[0].path
    assert sf.read(tmp_path / "a" / first)[0].tolist() == sf.read(tmp_path / "b" / first)[0].tolist()


def test_tail_profile_is_a_floored_power_law():
    profile = espeak_corpus.tail_profile(32, 40, 1.0, 4)
    assert profile[:4] == [32, 16, 11, 8] and profile[-1] == 4 and min(profile) == 4
    assert all(a >= b for a, b in zip(profile, profile[1:]))  # monotone in rank
    assert espeak_corpus.tail_profile(32, 40, 0.0, 4) == [32] * 40  # alpha 0: the balanced corpus
    assert espeak_corpus.tail_profile(3, 5, 1.0, 4) == [3] * 5  # the floor never exceeds the head


def test_which_speakers_are_rare_is_drawn_from_the_seed():
    counts = espeak_corpus.speaker_train_counts(40, 32, 1.0, 4, seed=0)
    assert sorted(counts.values(), reverse=True) == espeak_corpus.tail_profile(32, 40, 1.0, 4)
    assert counts == espeak_corpus.speaker_train_counts(40, 32, 1.0, 4, seed=0)
    assert list(counts.values()) != sorted(counts.values(), reverse=True)  # not tied to the voice order
    assert counts != espeak_corpus.speaker_train_counts(40, 32, 1.0, 4, seed=1)


def test_long_tailed_corpus_thins_only_the_train_split_and_records_its_counts(tmp_path):
    out, logs = tmp_path / "c", []
    options = ["--out", str(out), "--speakers", "4", "--heldout-speakers", "1", "--utterances", "6"]
    espeak_corpus.main(options + ["--tail", "1", "--min-utterances", "2"])
    counts = json.loads((out / "speaker_counts.json").read_text())
    assert sorted(counts.values()) == [2, 2, 2, 5]  # the train share of 6 is 5: 5, 5/2, 5/3, 5/4, floored at 2
    rows = list(read_manifest(out / "manifest.tsv"))
    assert Counter(r.speaker for r in rows if r.split == "train") == counts
    assert Counter(r.speaker for r in rows if r.split == "test") == {s: 1 for s in counts}  # as balanced
    assert Counter(r.split for r in rows if r.speaker == "spk004") == {"heldout": 6}
    tailed = {r.id: r for r in rows}

    espeak_corpus.build(out, speakers=4, heldout_speakers=1, utterances=6, tail=2.0, min_utterances=2,
                        log=logs.append)
    assert "nothing to do" not in logs[-1]  # another --tail is another corpus
    espeak_corpus.build(out, speakers=4, heldout_speakers=1, utterances=6, log=logs.append)
    assert not (out / "speaker_counts.json").exists()  # balanced again: no head and tail to report
    balanced = {r.id: r for r in read_manifest(out / "manifest.tsv")}
    assert len(balanced) == 30 and all(balanced[i] == r for i, r in tailed.items())  # a subset of the balanced


def test_a_negative_tail_is_refused():
    with pytest.raises(SystemExit):
        espeak_corpus.main(["--out", "unused", "--tail", "-1"])


@pytest.mark.parametrize("option, message", [(["--tail", "nan"], "nan is not a finite number"),
                                             (["--tail", "inf"], "inf is not a finite number"),
                                             (["--tail", "-1"], "-1 is not a number >= 0"),
                                             (["--speakers", "0"], "0 is not a whole number >= 1")])
def test_arguments_that_make_no_sense_are_refused_with_exit_code_2(tmp_path, capsys, option, message):
    with pytest.raises(SystemExit) as stop:
        espeak_corpus.main(["--out", str(tmp_path / "out"), *option])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
