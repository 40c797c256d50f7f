"""recipes/long_tail/speech.py end to end on a tiny long-tailed eSpeak corpus: CPC with its pruned competitor and
SDCLR on audio, the speaker probe split into head and tail speakers; then every step skipped."""
import json

import yaml

from conftest import run_script

PRETRAIN = {
    "prepare": {"script": "espeak_corpus", "options": {"speakers": 6, "heldout_speakers": 5, "utterances": 10,
                                                      "tail": 1.0, "min_utterances": 2, "workers": 2}},
    "model": {"size": "audio_paper", "encoder": {"dim": 32}, "context": {"dim": 32}},
    "objective": {"predictor": {"steps": 4}, "loss": {"num_negatives": 16}},
    "data": {"kind": "manifest", "window": 8000, "batch_size": 8},
    "optim": {"lr": 2e-3, "warmup_steps": 2},
    "train": {"max_steps": 6, "log_every": 3, "val_every": 6, "val_batches": 1, "ckpt_every": 6},
    "probe": {"episodes": 20, "phone_frames": 2000},
}


def test_long_tail_speech_table_runs_each_method_and_splits_the_speaker_probe(tmp_path):
    corpus = tmp_path / "corpus"
    pretrain = {**PRETRAIN, "prepare": {**PRETRAIN["prepare"], "options": {**PRETRAIN["prepare"]["options"],
                                                                            "out": str(corpus)}},
                "data": {**PRETRAIN["data"], "manifest": str(corpus / "manifest.tsv")}}
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(pretrain))
    table = {"pretrain": str(tmp_path / "pretrain.yaml"), "out_dir": str(tmp_path / "table"),
             "methods": {"cpc_pruned": ["objective.pruned_competitor=true", "objective.prune_ratio=0.5"],
                         "sdclr": ["objective.name=sdclr", "objective.hidden=32", "objective.projection=16",
                                   "objective.prune_ratio=0.5"]}}
    config = tmp_path / "table.yaml"
    config.write_text(yaml.safe_dump(table))

    run_script("recipes/long_tail/speech.py", config)
    counts = json.loads((corpus / "speaker_counts.json").read_text())
    assert max(counts.values()) > min(counts.values())  # a long tail of training utterances
    for method, objective in (("cpc_pruned", "cpc"), ("sdclr", "sdclr")):
        saved = yaml.safe_load((tmp_path / "table" / method / "config.yaml").read_text())
        assert saved["objective"]["name"] == objective
        assert json.loads((tmp_path / "table" / method / "summary.json").read_text())["step"] == 6
    rows = json.loads((tmp_path / "table" / "results.json").read_text())["rows"]
    assert set(rows) == {"cpc_pruned", "sdclr", "mfcc13", "random_init"}
    for r in rows.values():
        assert 0 <= r["speaker_head"] <= 1 and 0 <= r["speaker_tail"] <= 1
    md = (tmp_path / "table" / "results.md").read_text()
    assert "| sdclr |" in md and "head - tail" in md

    again = run_script("recipes/long_tail/speech.py", config)
    assert "== pretraining: done before" in again and "== probes: done before" in again
