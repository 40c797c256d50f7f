"""The long-tailed image benchmark (what SDCLR, Jiang et al. ICML 2021, was made for): pretrain every method on a
long-tailed subset of the training images and on a balanced subset of the same size, for several draws of which
classes are rare; then a linear probe on the frozen features, trained on the full (balanced) training split and
scored on the test split: overall accuracy, the accuracy of the many / medium / few classes (by their
pretraining count) and the spread of those three (balancedness), mean ± std over the draws.

    python recipes/long_tail/images.py --config recipes/long_tail/images_cpu.yaml [key=value ...]

The table config names a seqcpc config (`pretrain:`: the source data set's `prepare:`, the model, the budget),
the draws, the subsets and the methods (`methods:` name -> overrides of that config, and the draws it runs;
random_init is a row every table has). Run folders: <out_dir>/<method>/draw<k>_<subset>, each with its probe's
probe.json; the subsets are written to <data_dir>/draw<k>_<subset>. Every step is skipped when done and a killed
pretraining is resumed; running the command again finishes the rest. The table is <out_dir>/results.{md,json}
and the plot <out_dir>/per_class.png. `key=value` overrides go to the pretraining config.
"""
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep import long_tail
from recipes.common import cached, prepare_data, pretrain_once, read_yaml_config, table_main
from seqcpc.config import load_config, with_overrides
from seqcpc.errors import ConfigError
from seqcpc.eval.long_tail import SCALARS, group_report, group_table, plot_per_class, summarise_draws
from seqcpc.eval.probes import linear_probe, random_init
from seqcpc.eval.report import write_report
from seqcpc.assembly import check_config, complete_config
from seqcpc.image.features import embed_images
from seqcpc.image.store import load_split, read_info
from seqcpc.train.checkpoint import load_model

SUBSETS = ("long_tail", "balanced")


@dataclass
class LongTailTable:
    pretrain: str = ""  # the seqcpc config: the source data set (prepare, data.images), the model, the budget
    overrides: list[str] = field(default_factory=list)  # key=value overrides of that config
    out_dir: str = "runs/long_tail_images"
    data_dir: str = "data/long_tail"  # where the subsets are written
    imbalance: float = 100.0  # largest / smallest class of the long-tailed subsets
    draws: list[int] = field(default_factory=lambda: [0, 1, 2])
    subsets: list[str] = field(default_factory=lambda: list(SUBSETS))
    # method -> {"overrides": [key=value, ...], "draws": [k, ...], "subsets": [...]} (default: all draws, subsets)
    methods: dict = field(default_factory=lambda: {"simclr": {"overrides": ["objective.name=simclr"]}})
    reference: str = "simclr"  # every method is also reported as its difference to this one, draw by draw


def read_table(path) -> LongTailTable:
    table = read_yaml_config(path, LongTailTable)
    if not table.pretrain or not table.methods or not table.draws:
        raise ConfigError(f"{path}: needs `pretrain:` (a seqcpc config), `draws:` and `methods:`")
    if not set(table.subsets) <= set(SUBSETS) or not table.subsets:
        raise ConfigError(f"{path}: subsets {table.subsets} must be among {list(SUBSETS)}")
    for name, spec in table.methods.items():
        if name == "random_init" or not isinstance(spec, dict) or set(spec) - {"overrides", "draws", "subsets"}:
            raise ConfigError(f"{path}: methods.{name} must be a mapping with `overrides` (a list of key=value) and "
                              f"optionally `draws` and `subsets`; random_init is a row every table has")
        for key, allowed in (("draws", table.draws), ("subsets", table.subsets)):
            unknown = set(spec.get(key, [])) - set(allowed)
            if unknown:
                raise ConfigError(f"{path}: methods.{name}.{key} {sorted(unknown)} are not among {key} {allowed}")
    return table


def subset_dir(table: LongTailTable, draw: int, subset: str) -> Path:
    return Path(table.data_dir) / f"draw{draw}_{subset}"


def probe(cfg, model, images: dict, log=print) -> dict:
    """Linear probe on the full training split, scored on the test split: {"pred": test predictions, "acc",
    "l2", "seconds"}."""
    t0 = time.time()
    feats = {split: embed_images(model, x, cfg.probe.pool, log=log, name=split) for split, (x, _) in images.items()}
    r = linear_probe(feats["train"], images["train"][1], feats["test"], images["test"][1], l2_grid=cfg.probe.l2_grid,
                     seed=cfg.train.seed)
    log(f"  probe: accuracy {r['acc']:.4f} (l2 {r['l2']:g}) in {time.time() - t0:.0f} s")
    return {"pred": r["pred"].tolist(), "acc": r["acc"], "l2": r["l2"], "seconds": time.time() - t0}


def run_method(cfg, table: LongTailTable, name: str, images: dict, log=print) -> dict:
    """Pretrain and probe one method on every (draw, subset); returns {(draw, subset): probe result}."""
    spec, out = table.methods[name], {}
    for draw in spec.get("draws", table.draws):
        for subset in spec.get("subsets", table.subsets):
            run_dir = Path(table.out_dir) / name / f"draw{draw}_{subset}"
            run_cfg = with_overrides(cfg, [*spec.get("overrides", []), f"data.images={subset_dir(table, draw, subset)}",
                                           f"train.out_dir={run_dir}", f"train.seed={draw}"])
            run_cfg = complete_config(run_cfg)
            check_config(run_cfg)
            log(f"== {name}, draw {draw}, {subset}")
            ckpt = pretrain_once(run_cfg)
            out[(draw, subset)] = cached(run_dir / "probe.json", lambda: probe(run_cfg, load_model(ckpt), images, log))
    return out


def random_row(cfg, table: LongTailTable, images: dict, log=print) -> dict:
    """The encoder with random weights: one probe, scored against every draw's class groups."""
    run_dir = Path(table.out_dir) / "random_init"
    run_dir.mkdir(parents=True, exist_ok=True)
    log("== random_init")
    model = random_init(cfg, cfg.train.seed)
    result = cached(run_dir / "probe.json", lambda: probe(cfg, model, images, log))
    return {(draw, "long_tail"): result for draw in table.draws}


def summarise(table: LongTailTable, probes: dict, y_test, counts: dict) -> dict:
    """{method: {subset: summary over draws}} and the per-rank accuracies for the plot. Every run is grouped by
    the long-tailed counts of its draw, so a balanced run is scored on the same many / medium / few classes."""
    rows, curves, reports_of = {}, {}, {}
    for method, runs in probes.items():
        for subset in table.subsets:
            draws = sorted(d for d, s in runs if s == subset)
            if not draws:
                continue
            reports = [group_report(y_test, np.array(runs[(d, subset)]["pred"]), counts[d]) for d in draws]
            reports_of[(method, subset)] = dict(zip(draws, reports))
            rows[f"{method} ({subset.replace('_', '-')})"] = summarise_draws(reports) | {"draw_ids": draws}
            if subset == "long_tail":  # per rank (largest class first): the mean over draws of that rank's class
                by_rank = [[r["per_class"][c] for c in np.argsort(-np.array(counts[d]), kind="stable")]
                           for r, d in zip(reports, draws)]
                ranks = sorted(counts[draws[0]], reverse=True)
                curves[method] = list(zip(ranks, np.mean(by_rank, axis=0).tolist()))
    return {"rows": rows, "curves": curves, "paired": paired(reports_of, table.reference)}


def paired(reports_of: dict, reference: str) -> dict:
    """Each method's scores minus the reference method's on the same draw and subset (the draw decides which
    classes are rare, and that moves every method's group scores alike), mean ± std over their common draws."""
    out = {}
    for (method, subset), reports in reports_of.items():
        ref = reports_of.get((reference, subset), {})
        common = sorted(set(reports) & set(ref))
        if method == reference or not common:
            continue
        diffs = [{k: reports[d][k] - ref[d][k] for k in SCALARS} for d in common]
        out[f"{method} ({subset.replace('_', '-')})"] = summarise_draws(diffs) | {"draw_ids": common}
    return out


def run_table(table: LongTailTable, overrides: list[str], log=print) -> dict:
    cfg = load_config(table.pretrain, [*table.overrides, *overrides])
    prepare_data(cfg.prepare)
    source = cfg.data.images
    counts = {}  # the class groups are the long-tailed subset's, so it is written even when only its twin is used
    for draw in table.draws:
        counts[draw] = long_tail.build(source, subset_dir(table, draw, "long_tail"), table.imbalance, draw,
                                       log=log)["class_counts"]
        if "balanced" in table.subsets:
            long_tail.build(source, subset_dir(table, draw, "balanced"), table.imbalance, draw, balanced=True, log=log)
    images = {split: load_split(source, split) for split in ("train", "test")}
    cfg = complete_config(cfg)
    check_config(cfg)
    t0 = time.time()
    probes = {"random_init": random_row(cfg, table, images, log)}
    for name in table.methods:
        probes[name] = run_method(cfg, table, name, images, log)
    summary = summarise(table, probes, images["test"][1], counts)
    out = Path(table.out_dir)
    minutes = {name: float(np.mean([json.loads(p.read_text())["elapsed_s"] / 60
                                    for p in (out / name).glob("draw*/summary.json")]))
               for name in table.methods}
    summary["pretraining_minutes"] = minutes
    facts = (f"Source {source} ({read_info(source)['splits']['train']} training images), imbalance "
             f"{table.imbalance:g}, draws {table.draws}; {cfg.train.max_steps} steps of {cfg.data.batch_size} images "
             f"per run; pretraining per run: " + ", ".join(f"{n} {m:.1f} min" for n, m in minutes.items()) +
             f"; the whole table {(time.time() - t0) / 60:.0f} min this time (finished steps skipped). Probe: "
             f"linear on the latent grid pooled to {cfg.probe.pool}x{cfg.probe.pool}, trained on every training "
             f"image, scored on the test split. Groups: classes by pretraining count, 4 many / 3 medium / 3 few. "
             f"Config: {table.pretrain} {' '.join([*table.overrides, *overrides])}".rstrip())
    tables = group_table(summary["rows"])
    if summary["paired"]:
        tables += (f"\n\nMinus {table.reference} on the same draw and subset (points of accuracy; for std, "
                   f"negative is more balanced):\n\n" + group_table(summary["paired"]))
    write_report(out, "Long-tailed pretraining: linear probe by class frequency", facts, tables,
                 {"rows": summary["rows"], "paired": summary["paired"], "curves": summary["curves"],
                  "pretraining_minutes": minutes}, log)
    plot_per_class(summary["curves"], out / "per_class.png",
                   f"per-class linear probe accuracy, long-tailed pretraining (imbalance {table.imbalance:g})")
    return summary


def main(argv=None) -> int:
    return table_main(__doc__, read_table, run_table, "long-tailed image recipe", argv)


if __name__ == "__main__":
    sys.exit(main())
