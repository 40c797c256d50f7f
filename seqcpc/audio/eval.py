"""Frozen-feature probes for speech (the CPC paper's protocol), beside MFCC and random-init baselines: the list of
the speech probes (seqcpc/audio/probes.py), run by the shared evaluation loop (seqcpc/eval/run.py), and the report
of their table.

Rows: CPC's context c (cpc) and latents z (cpc_z, probe.cpc_z), the same network with random weights, MFCC, and
any reference networks the caller adds (the speech recipe's supervised ceiling); seqcpc/audio/features.py.
Columns: the probes' scores, in the order of SPEECH_PROBES.
"""
from pathlib import Path

from seqcpc.audio.features import extractors_for
from seqcpc.audio.probes import (SpeechData, abx_items, abx_probe, corpus_counts, few_shot_probe, phone_probe,
                                 speaker_confusion, speaker_knn_probe, speaker_probe, units_probe)
from seqcpc.config import Config
from seqcpc.errors import SeqcpcError
from seqcpc.eval.report import markdown_table, plot_accuracy_bars
from seqcpc.eval.run import ProbeContext, Report, run_probes

SPEECH_PROBES = [speaker_probe, speaker_knn_probe, speaker_confusion, phone_probe, units_probe, abx_probe,
                 few_shot_probe, corpus_counts]


def run_speech_probes(cfg: Config, model, out_dir, log=print, references: dict | None = None,
                      baselines: bool = True) -> dict:
    """Run every probe the corpus of data.manifest supports on the model's features beside the baselines (unless
    `baselines` is false: e.g. the later points of a learning curve) and the frozen context of each `references`
    network, {name: model}; write results.{json,md} and plots to out_dir; return {"results": {features: {column:
    value}}, "counts": {...}}."""
    if not cfg.data.manifest:
        raise SeqcpcError("the speech probes read a speech corpus: data.manifest=PATH (with data.kind=shards, by "
                          "default the corpus the shards were packed from)")
    sample_rate = cfg.data.sample_rate
    data = SpeechData(cfg.data.manifest, sample_rate, cfg.probe.window or cfg.data.window,
                      extractors_for(cfg, model, sample_rate, references, cfg.probe.cpc_z, baselines),
                      cfg.data.allow_outside_paths)
    ctx = ProbeContext(cfg, data, Path(out_dir), log)
    abx_items(ctx)  # a bad item file stops here, not after the probes that take minutes
    return run_probes(SPEECH_PROBES, ctx, speech_report)


def speech_report(results: dict) -> Report:
    """One row per feature set, one column per score (the few-shot ones with their 95% interval)."""
    table, counts = results["results"], results["counts"]
    metrics = [m for m in next(iter(table.values())) if not m.endswith("ci95")]
    rows = [[name] + [f"{100 * r[m]:.1f}" + (f" ± {100 * r[m + '_ci95']:.1f}" if m + "_ci95" in r else "")
                      for m in metrics] for name, r in table.items()]
    facts = ", ".join(f"{k}: {v}" for k, v in counts.items())
    if "head_speakers" in counts:
        facts += ("\n\nspeaker_head / speaker_tail: mean per-speaker accuracy of the half of the speakers with the "
                  "most / fewest train utterances (speaker_counts.json)")
    if "unit_pnmi" in metrics:
        facts += ("\n\nunit_purity / unit_pnmi: k-means units fitted on the phone probe's train frames, scored on its "
                  "test frames: phone purity and I(phone; unit) / H(phone)")
    if "abx_within" in metrics:
        facts += "\n\nabx_within / abx_across: ABX phone discrimination **error** rates (lower is better)"
    bars = {m: {n: r[m] for n, r in table.items()} for m in metrics}
    return Report("Speech probes (%, test split)", facts, markdown_table(["features", *metrics], rows), {
        "probe_accuracy.png": lambda path: plot_accuracy_bars(
            bars, path, "frozen-feature probes (test accuracy; unit_*: purity, PNMI; abx_*: error)")})
