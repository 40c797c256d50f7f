"""recipes/speech/run.py end to end on a tiny eSpeak corpus: every step, then every step skipped."""
import json

import yaml

from conftest import run_recipe

TINY = {
    "prepare": {"script": "espeak_corpus", "options": {"speakers": 6, "heldout_speakers": 5, "utterances": 8,
                                                      "workers": 2}},
    "model": {"size": "audio_paper", "encoder": {"dim": 32}, "context": {"dim": 32},
              "predictor": {"steps": 4}, "loss": {"num_negatives": 16}},
    "data": {"kind": "manifest", "window": 8000, "batch_size": 8},
    "optim": {"lr": 2e-3, "warmup_steps": 5},
    "train": {"max_steps": 60, "log_every": 10, "val_every": 60, "val_batches": 2, "ckpt_every": 60},
    "probe": {"episodes": 100, "phone_frames": 5000},
}


def test_speech_recipe_runs_end_to_end_then_skips_what_is_done(tmp_path):
    cfg = {**TINY, "prepare": {**TINY["prepare"], "options": {**TINY["prepare"]["options"], "out": str(tmp_path / "c")}},
           "data": {**TINY["data"], "manifest": str(tmp_path / "c" / "manifest.tsv")},
           "train": {**TINY["train"], "out_dir": str(tmp_path / "run")}}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = run_recipe("speech", config)
    assert "== data" in out and "== pretraining" in out and "== probes" in out
    results = json.loads((tmp_path / "run" / "probes" / "results.json").read_text())["results"]
    assert set(results) == {"cpc", "random_init", "mfcc13"}
    chance = 1 / 6
    assert results["mfcc13"]["speaker"] > chance and results["mfcc13"]["phone"] > 1 / 40
    assert "5way_5shot" in results["cpc"]
    # 60 steps of pretraining already make better features than the same network's random weights (measured:
    # speaker 0.96 against 0.67, mean of the five probes 0.50 against 0.37)
    assert results["cpc"]["speaker"] > results["random_init"]["speaker"]
    mean = {name: sum(v for k, v in r.items() if not k.endswith("ci95")) / 5 for name, r in results.items()}
    assert mean["cpc"] > mean["random_init"] + 0.05, mean
    for name in ("curves.png", "probes/probe_accuracy.png", "probes/speaker_confusion.png", "probes/results.md"):
        assert (tmp_path / "run" / name).is_file(), name

    again = run_recipe("speech", config)
    assert "nothing to do" in again and "pretraining: done before" in again and "probes: done before" in again
