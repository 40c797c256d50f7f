import json

import numpy as np
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

    espeak_corpus.build(tmp_path / "a", speakers=3, heldout_speakers=1, utterances=5, workers=2, log=logs.append)
    assert "nothing to do" in logs[-1]
    espeak_corpus.build(tmp_path / "b", speakers=3, heldout_speakers=1, utterances=5, workers=2, log=logs.append)
    assert (tmp_path / "a" / "manifest.tsv").read_text() == (tmp_path / "b" / "manifest.tsv").read_text()
    first = rows[0].path
    assert sf.read(tmp_path / "a" / first)[0].tolist() == sf.read(tmp_path / "b" / first)[0].tolist()
