"""The speech probes (the CPC paper's protocol and more), each a function of a ProbeContext (seqcpc/eval/run.py)
whose data is a SpeechData. Each returns {"results": {features: {column: value}}} for every feature set it scores
(or nothing when the corpus does not support it); corpus_counts returns the "counts" the report states.

  speaker   linear speaker classifiers on train-split windows, scored on test-split windows of the same speakers
  phone     frame-level linear classifier at 100 Hz against the frame labels (phones.txt), and k-means units
  ABX       phone discrimination error within and across speakers on an item file
  few-shot  prototypical N-way K-shot episodes on pooled windows of the held-out speakers

Shapes: N windows, D feature dim, F frames.
"""
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from seqcpc.audio.abx import abx_scores
from seqcpc.audio.features import WindowFeatures, embed_windows, frame_dataset, window_specs
from seqcpc.audio.manifest import read_phones
from seqcpc.errors import DataError
from seqcpc.eval.abx import NoTriplet, read_items
from seqcpc.eval.long_tail import class_groups, per_class_accuracy
from seqcpc.eval.probes import feasible_shots, knn_probe, linear_probe, prototypical_episodes
from seqcpc.eval.report import confusion_matrix, plot_confusion
from seqcpc.eval.run import ProbeContext, shared
from seqcpc.eval.units import frame_unit_scores


class SpeechData(NamedTuple):
    manifest: str
    sample_rate: int
    window: int  # samples of a probe window
    extractors: dict  # feature set (a row of the table) -> waves (B, L) -> frames (B, T, D)
    allow_outside: bool  # data.allow_outside_paths


class SpeakerWindows(NamedTuple):
    spec: dict  # split -> [WindowSpec]
    speakers: list[str]  # the classes, sorted
    groups: dict  # "head" / "tail" -> speakers, on a long-tailed corpus
    features: dict  # split -> {feature set: WindowFeatures}
    y: dict  # split -> (N,) speaker classes


# the speaker probe's variants: column -> the features of a window it reads
SPEAKER_FEATURES = {"speaker": lambda f: f.pooled, "speaker_stats": WindowFeatures.stats,
                    "speaker_last": lambda f: f.last}


def split_windows(ctx: ProbeContext, split: str) -> list:
    d, p = ctx.data, ctx.cfg.probe
    return window_specs(d.manifest, split, d.window, d.sample_rate, p.windows_per_utterance,
                        p.utterances_per_speaker, d.allow_outside)


@shared
def speaker_windows(ctx: ProbeContext) -> SpeakerWindows:
    """The train and test windows of the speakers with training windows, checked and embedded once."""
    manifest = ctx.data.manifest
    ctx.log("speaker probe: embedding windows")
    spec = {split: split_windows(ctx, split) for split in ("train", "test")}
    speakers = sorted({w.speaker for w in spec["train"]})
    index = {s: i for i, s in enumerate(speakers)}
    unseen = {w.speaker for w in spec["test"]} - set(index)
    if unseen:  # a speaker needs training windows to be a class of the probe
        ctx.log(f"speaker probe: {len(unseen)} speakers have test but no training utterances and are left out")
        spec["test"] = [w for w in spec["test"] if w.speaker in index]
    if not spec["train"] or not spec["test"]:
        raise DataError(f"{manifest}: the speaker probe needs train and test windows of the same speakers")
    if len(speakers) < 2:
        raise DataError(f"{manifest}: the speaker probe needs at least two speakers with training and test "
                        f"utterances, and this corpus has {len(speakers)} ({speakers[0]}): every feature set would "
                        f"score 100%")
    groups = speaker_groups(manifest, {w.speaker for w in spec["test"]})
    features = {split: embed_windows(ctx.data.extractors, spec[split], ctx.data.window, ctx.data.sample_rate)
                for split in spec}
    y = {split: np.array([index[w.speaker] for w in spec[split]]) for split in spec}
    return SpeakerWindows(spec, speakers, groups, features, y)


def speaker_groups(manifest, tested: set[str]) -> dict[str, list[str]]:
    """{"head": speakers, "tail": speakers} among the `tested` speakers of a long-tailed corpus: the halves by the
    train utterances its speaker_counts.json records, most first (ties by name; with an odd number the middle
    speaker is in the head, as seqcpc.eval.long_tail.class_groups cuts); {} without that file (a balanced
    corpus) or with fewer than two tested speakers."""
    path = Path(manifest).parent / "speaker_counts.json"
    if not path.is_file() or len(tested) < 2:
        return {}
    counts = json.loads(path.read_text())
    missing = sorted(tested - set(counts))
    if missing:
        raise DataError(f"{path} has no count for speakers {missing[:5]} of {manifest}: it belongs to another "
                        f"corpus; rebuild the corpus or remove the file")
    ranked = sorted(tested)
    groups = class_groups([counts[s] for s in ranked], parts=2)
    return {"head": [ranked[i] for i in groups["many"]], "tail": [ranked[i] for i in groups["few"]]}


@shared
def speaker_fit(ctx: ProbeContext, name: str, variant: str) -> dict:
    """linear_probe's result for one feature set on the window features of one SPEAKER_FEATURES variant."""
    w, features = speaker_windows(ctx), SPEAKER_FEATURES[variant]
    return linear_probe(features(w.features["train"][name]), w.y["train"], features(w.features["test"][name]),
                        w.y["test"], len(w.speakers))


def group_accuracies(w: SpeakerWindows, pred) -> dict:
    """speaker_head, speaker_tail: the mean accuracy over each group's speakers (each speaker weighs alike)."""
    per_speaker = per_class_accuracy(w.y["test"], pred, len(w.speakers))
    index = {s: i for i, s in enumerate(w.speakers)}
    return {f"speaker_{group}": float(np.mean(per_speaker[[index[s] for s in members]]))
            for group, members in w.groups.items()}


def speaker_probe(ctx: ProbeContext) -> dict:
    """speaker, speaker_stats, speaker_last: linear speaker probes on a window's features averaged over time, on
    their mean and standard deviation over time (x-vectors' statistics pooling) and on its last frame; on a
    long-tailed corpus (speaker_counts.json beside the manifest, from data_prep.espeak_corpus --tail) speaker_head
    and speaker_tail too."""
    w, rows = speaker_windows(ctx), {}
    for name in ctx.data.extractors:
        row = rows[name] = {}
        for variant in SPEAKER_FEATURES:
            fit = speaker_fit(ctx, name, variant)
            row[variant] = fit["acc"]
            if variant == "speaker":
                row.update(group_accuracies(w, fit["pred"]))
        ctx.log(f"  {name}: speaker {row['speaker']:.3f} (mean + std {row['speaker_stats']:.3f}, last frame "
                f"{row['speaker_last']:.3f})" + "".join(f", {g} {row[f'speaker_{g}']:.3f}" for g in w.groups))
    return {"results": rows}


def speaker_knn_probe(ctx: ProbeContext) -> dict:
    """speaker_knn: a k-NN speaker classifier (probe.knn neighbours; 0: none) on the averaged window features."""
    k = ctx.cfg.probe.knn
    if not k:
        return {}
    w = speaker_windows(ctx)
    return {"results": {name: {"speaker_knn": knn_probe(w.features["train"][name].pooled, w.y["train"],
                                                        w.features["test"][name].pooled, w.y["test"], k)["acc"]}
                        for name in ctx.data.extractors}}


def speaker_confusion(ctx: ProbeContext) -> dict:
    """speaker_confusion.png: the test confusions of the speaker probe on CPC's features; no rows."""
    w = speaker_windows(ctx)
    matrix = confusion_matrix(w.y["test"], speaker_fit(ctx, "cpc", "speaker")["pred"], len(w.speakers))
    plot_confusion(matrix, ctx.out_dir / "speaker_confusion.png", w.speakers, "speaker probe on CPC features (test)")
    return {}


class PhoneFrames(NamedTuple):
    train: dict  # feature set -> (X (F, D), y (F,))
    test: dict
    classes: int


@shared
def phone_frames(ctx: ProbeContext) -> PhoneFrames | None:
    """The labelled frames of both splits, or None without phones.txt beside the manifest."""
    d, p = ctx.data, ctx.cfg.probe
    path = Path(d.manifest).parent / "phones.txt"
    if not path.is_file():
        return None
    ctx.log("phone probe: frame features")
    labels = read_phones(path)
    train, test = (frame_dataset(d.extractors, d.manifest, split, labels, d.sample_rate, p.phone_frames,
                                 p.phone_utterances_per_speaker, ctx.cfg.train.seed, d.allow_outside)
                   for split in ("train", "test"))
    return PhoneFrames(train, test, int(max(max(labels[k].max() for k in labels), 0)) + 1)


def phone_probe(ctx: ProbeContext) -> dict:
    """phone: a frame-level linear phone classifier at 100 Hz against the frame labels (phones.txt)."""
    frames, rows = phone_frames(ctx), {}
    if frames is None:
        return {}
    for name in ctx.data.extractors:
        rows[name] = {"phone": linear_probe(*frames.train[name], *frames.test[name], frames.classes)["acc"]}
        ctx.log(f"  {name}: phone {rows[name]['phone']:.3f}")
    return {"results": rows}


def units_probe(ctx: ProbeContext) -> dict:
    """unit_purity, unit_pnmi: k-means units (probe.units of them; 0: none) fitted on the phone probe's train
    frames, scored on its test frames by phone purity and PNMI (seqcpc/eval/units.py)."""
    units, rows = ctx.cfg.probe.units, {}
    frames = phone_frames(ctx) if units else None
    if frames is None:
        return {}
    for name in ctx.data.extractors:
        rows[name] = frame_unit_scores({name: frames.train[name]}, {name: frames.test[name]}, units,
                                       ctx.cfg.train.seed, frames.classes)[name]
        ctx.log(f"  {name}: units purity {rows[name]['unit_purity']:.3f} PNMI {rows[name]['unit_pnmi']:.3f}")
    return {"results": rows}


@shared
def abx_items(ctx: ProbeContext) -> list | None:
    """The items of probe.abx_items, else of abx_test.item beside the manifest; a file that is given but missing,
    or that is there but malformed, stops the probes. None (ABX skipped, with a log line) only when probe.abx_items
    is unset and there is no abx_test.item."""
    given, manifest = ctx.cfg.probe.abx_items, ctx.cfg.data.manifest
    path = Path(given) if given else Path(manifest).parent / "abx_test.item"
    if given and not path.is_file():
        raise DataError(f"probe.abx_items={given} does not exist; write one with python -m data_prep.abx_items "
                        f"--manifest {manifest} --split test --out PATH")
    if not path.is_file():
        ctx.log(f"ABX skipped: probe.abx_items is unset and there is no {path}")
        return None
    ctx.log(f"ABX: {path}")
    return read_items(path)


def abx_probe(ctx: ProbeContext) -> dict:
    """abx_within, abx_across: ABX phone discrimination errors (seqcpc/eval/abx.py) on abx_items; none without an
    item file, or when its items make no triplet (the other probes still count)."""
    d, items = ctx.data, abx_items(ctx)
    if items is None:
        return {}
    try:
        return {"results": abx_scores(d.extractors, d.manifest, items, d.sample_rate,
                                      files_per_speaker=ctx.cfg.probe.abx_files_per_speaker, seed=ctx.cfg.train.seed,
                                      allow_outside=d.allow_outside, log=ctx.log)}
    except NoTriplet as err:
        ctx.log(f"ABX left out: {err}")
        return {}


@shared
def heldout_windows(ctx: ProbeContext) -> list:
    return split_windows(ctx, "heldout")


def few_shot_probe(ctx: ProbeContext) -> dict:
    """<n>way_<k>shot and its _ci95: prototypical episodes on the averaged windows of the held-out speakers, for
    each probe.shots count enough of them have windows for."""
    p, held = ctx.cfg.probe, heldout_windows(ctx)
    _, labels, windows_per_speaker = np.unique([w.speaker for w in held], return_inverse=True, return_counts=True)
    shots = feasible_shots(windows_per_speaker, p, "held-out windows", ctx.log)
    if not shots:
        return {}
    ctx.log("few-shot: held-out speakers")
    features = embed_windows(ctx.data.extractors, held, ctx.data.window, ctx.data.sample_rate)
    rows = {name: {} for name in ctx.data.extractors}
    for name, row in rows.items():
        for k in shots:
            r = prototypical_episodes(features[name].pooled, labels, n_way=p.n_way, k_shot=k, n_query=p.n_query,
                                      episodes=p.episodes, seed=ctx.cfg.train.seed)
            row[f"{p.n_way}way_{k}shot"], row[f"{p.n_way}way_{k}shot_ci95"] = r["mean"], r["ci95"]
        ctx.log(f"  {name}: " + ", ".join(f"{k}-shot {row[f'{p.n_way}way_{k}shot']:.3f}" for k in shots))
    return {"results": rows}


def corpus_counts(ctx: ProbeContext) -> dict:
    """counts: the speakers and windows the probes saw; no rows."""
    w = speaker_windows(ctx)
    return {"counts": {"speakers": len(w.speakers), "train_windows": len(w.spec["train"]),
                       "test_windows": len(w.spec["test"]), "heldout_windows": len(heldout_windows(ctx)),
                       **{f"{g}_speakers": len(members) for g, members in w.groups.items()}}}
