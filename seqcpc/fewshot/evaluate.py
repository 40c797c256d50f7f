"""Episodic evaluation: N-way K-shot accuracy on classes never trained on, for meta-learners and for
classifiers fitted on frozen features, every method scored on the same episodes.

Shapes: M evaluation items, E episodes, N ways, K shots, Q queries per class, D feature dim.
The modality gives the items (EpisodeData: inputs and labels of the evaluation classes, a sample of training
classes for feature statistics) and its frozen feature extractors. For each way x shot of the probe section
the same `probe.episodes` episodes (seed train.seed) are drawn for every method; a score is the mean episode
accuracy with its 95% confidence interval (1.96 std / sqrt(E)). Learners that classify features (prototypical,
matching, MAML adapting its head) embed every item once; MAML adapting every weight runs its inner loop per
episode on the inputs.
"""
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seqcpc import modalities
from seqcpc.errors import DataError
from seqcpc.eval.probes import episode_summary
from seqcpc.eval.report import markdown_table, pyplot, save_figure, write_report
from seqcpc.fewshot.classifiers import CLASSIFIERS
from seqcpc.fewshot.episodes import draw_episodes, split_episode
from seqcpc.objectives import registry
from seqcpc.train.progress import fmt_duration


@dataclass
class EpisodeData:
    items: torch.Tensor  # (M, ...) inputs of the evaluation classes, as the model reads them
    labels: np.ndarray  # (M,) their classes
    base: torch.Tensor  # (B, ...) inputs of training classes: their mean feature centres frozen features
    what: str = "items"  # what an item is, for messages ("images", "windows")


def setting_name(n_way: int, k_shot: int) -> str:
    return f"{n_way}way_{k_shot}shot"


def episode_sets(data: EpisodeData, probe_cfg, seed: int, log=print) -> dict:
    """{setting name: (E, N, K + Q) item indices} for every way x shot the evaluation classes allow; the others
    are reported and left out, as are classes too small for a shot count (each reported once)."""
    sets, reported = {}, set()

    def once(message: str) -> None:
        if message not in reported:
            reported.add(message)
            log(f"episodic evaluation: {message}")

    for n_way in probe_cfg.ways:
        for k in probe_cfg.shots:
            try:
                sets[setting_name(n_way, k)] = (n_way, k, draw_episodes(
                    data.labels, n_way, k, probe_cfg.n_query, probe_cfg.episodes, seed, data.what, log=once))
            except DataError as err:
                log(f"episodic evaluation: {n_way}-way {k}-shot left out: {err}")
    if not sets:
        raise DataError(f"no way x shot of probe.ways={probe_cfg.ways} probe.shots={probe_cfg.shots} with "
                        f"probe.n_query={probe_cfg.n_query} fits the {len(np.unique(data.labels))} evaluation classes")
    return sets


@torch.no_grad()
def embed_all(fn, items: torch.Tensor, batch: int = 256, log=print, name: str = "") -> torch.Tensor:
    """fn over the items in batches -> (M, D) float32 features, with progress lines."""
    out, t0 = [], time.time()
    for start in range(0, len(items), batch):
        out.append(fn(items[start: start + batch]).float().flatten(1))
        done = start + len(out[-1])
        if done % (10 * batch) == 0 or done == len(items):
            rate = done / max(time.time() - t0, 1e-9)
            log(f"  {name}: embedded {done}/{len(items)}, {rate:.0f}/s, eta {fmt_duration((len(items) - done) / rate)}")
    return torch.cat(out)


def query_labels(n_way: int, n_query: int) -> torch.Tensor:
    return torch.arange(n_way).repeat_interleave(n_query)


def evaluate_learner(learner, data: EpisodeData, sets: dict, log=print, name: str = "learner") -> dict:
    """{setting: score} of a meta-learner with its own classifier."""
    learner.eval()
    feats = embed_all(learner.embed, data.items, log=log, name=name) if learner.feature_level else None
    scores = {}
    for setting, (n_way, k, episodes) in sets.items():
        t0, correct = time.time(), []
        for e, episode in enumerate(episodes):
            flat = torch.as_tensor(episode.reshape(-1))
            if feats is not None:
                s, y_s, q, y_q = split_episode(feats[flat], n_way, k)
                logits = learner.classify(s, y_s, q, n_way)
            else:
                s, y_s, q, y_q = split_episode(data.items[flat], n_way, k)
                logits = learner.episode_logits(s, y_s, q, n_way)
            correct.append((logits.argmax(1) == y_q).float().mean().item())
            if feats is None and (e + 1) % 100 == 0:
                log(f"  {name} {setting}: {e + 1}/{len(episodes)} episodes ({fmt_duration(time.time() - t0)})")
        scores[setting] = episode_summary(np.array(correct))
        log(f"  {name} {setting}: {100 * scores[setting]['mean']:.1f} ± {100 * scores[setting]['ci95']:.1f}")
    return scores


def centre_and_normalise(base: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """Features minus the training classes' mean, scaled to unit length ("CL2N", which Wang et al. 2019,
    SimpleShot, found best for nearest-centroid few-shot). Unlike per-dimension z-scoring it does not blow up
    dimensions that barely vary in training, such as the border pixels of glyphs."""
    return F.normalize(feats - base.mean(0), dim=-1)


def evaluate_frozen(extract, data: EpisodeData, sets: dict, log=print, name: str = "features",
                    chunk: int = 100) -> dict:
    """{classifier: {setting: score}} of each classifier of seqcpc/fewshot/classifiers.py on frozen features,
    centred with the training-class sample's mean and L2-normalised."""
    base = embed_all(extract, data.base, log=log, name=f"{name} (training classes)")
    feats = centre_and_normalise(base, embed_all(extract, data.items, log=log, name=name))  # (M, D)
    scores = {clf: {} for clf in CLASSIFIERS}
    for setting, (n_way, k, episodes) in sets.items():
        y = query_labels(n_way, episodes.shape[2] - k)
        for clf, fit in CLASSIFIERS.items():
            correct = []
            for part in torch.as_tensor(episodes).split(chunk):  # (e, N, K + Q): bounded memory
                f = feats[part]  # (e, N, K + Q, D)
                logits = fit(f[:, :, :k], f[:, :, k:].flatten(1, 2))  # (e, N Q, N)
                correct.append((logits.argmax(-1) == y).float().mean(1).numpy())
            scores[clf][setting] = episode_summary(np.concatenate(correct))
        log(f"  {name} {setting}: " + ", ".join(f"{clf} {100 * scores[clf][setting]['mean']:.1f}" for clf in scores))
    return scores


def frozen_rows(extractors: dict, data: EpisodeData, sets: dict, log=print) -> dict:
    """{"<classifier> on <features>": {setting: score}} for every frozen feature extractor of the modality."""
    return {f"{clf} on {name}": scores for name, extract in extractors.items()
            for clf, scores in evaluate_frozen(extract, data, sets, log, name).items()}


def describe(data: EpisodeData, probe_cfg) -> str:
    """The facts line of an episodic results table."""
    return (f"{len(data.labels)} {data.what} of {len(np.unique(data.labels))} evaluation classes never trained on; "
            f"{probe_cfg.episodes} episodes per setting (the same for every method), {probe_cfg.n_query} queries "
            f"per class; accuracy % with 95% confidence intervals")


def score_table(rows: dict, settings: list, extra: dict | None = None) -> str:
    """Markdown: one row per method, `mean ± ci95` (%) per setting, plus `extra` columns (e.g. training time)."""
    extra = extra or {}
    header = ["method", *settings, *next(iter(extra.values()), {}).keys()]
    body = [[name] + [f"{100 * r[s]['mean']:.1f} ± {100 * r[s]['ci95']:.1f}" if s in r else "-" for s in settings]
            + list(extra.get(name, {}).values()) for name, r in rows.items()]
    return markdown_table(header, body)


def plot_shots(rows: dict, path, title: str) -> None:
    """Accuracy against shots, one panel per number of ways, one line per method (learners solid, classifiers
    on frozen features dashed), the legend beside the panels."""
    plt = pyplot()
    settings = list(next(iter(rows.values())))
    ways = sorted({int(s.split("way")[0]) for s in settings})
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, 20))
    fig, axes = plt.subplots(1, len(ways), figsize=(4.5 * len(ways) + 2.6, 4.5), squeeze=False)
    for ax, n_way in zip(axes[0], ways):
        for i, (name, r) in enumerate(rows.items()):
            points = sorted((int(s.split("_")[1][:-4]), v["mean"], v["ci95"]) for s, v in r.items()
                            if s.startswith(f"{n_way}way"))
            if points:
                k, mean, ci = map(np.array, zip(*points))
                ax.errorbar(k, 100 * mean, yerr=100 * ci, marker="o", capsize=3, label=name,
                            color=colours[i % 20], ls="--" if " on " in name else "-")
                ax.set_xticks(k)
        ax.axhline(100 / n_way, color="grey", ls=":", label="chance")
        ax.set(xlabel="shots (labelled examples per class)", ylabel="accuracy %", title=f"{n_way}-way")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1 - 2.5 / fig.get_figwidth(), 1))
    save_figure(fig, path)


def run_episodic_eval(cfg, model, out_dir, log=print) -> dict:
    """`seqcpc probe --episodic`: a learner's own episodes, or a CPC model's frozen features beside the same
    network untrained and the raw inputs; writes results.{md,json} and few_shot.png to out_dir."""
    entry, out_dir = modalities.get(cfg.model.modality), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = entry.episode_data(cfg, log)
    sets = episode_sets(data, cfg.probe, cfg.train.seed, log)
    objective = registry.get(cfg.objective.name)
    if objective.episodic:
        rows = {objective.name: evaluate_learner(model, data, sets, log, objective.name)}
    else:
        rows = frozen_rows(entry.frozen_features(cfg, model), data, sets, log)
    table = score_table(rows, list(sets))
    write_report(out_dir, "Few-shot episodes (accuracy %, mean ± 95% CI)", describe(data, cfg.probe), table, rows,
                 log)
    plot_shots(rows, out_dir / "few_shot.png", "episodic evaluation")
    return rows
