"""The few-shot table: meta-learners from scratch and from a CPC encoder, beside classifiers fitted on frozen
features, all scored on the same N-way K-shot episodes of classes never trained on.

    python recipes/fewshot/run.py --config recipes/fewshot/glyphs_cpu.yaml [key=value ...]

The table config names a seqcpc config (`pretrain:`, with its `prepare:` section, and `overrides:` of it) for
the data, the CPC run and the evaluation (its probe section), the learners (`methods`) and their starts
(`inits`: scratch, cpc), and the overrides every learner run takes (`learner`, `per_method`). Steps, each
skipped when done and resumed when killed: prepare the data, pretrain CPC, meta-train each method x init (the
same loop, checkpoints and resume: seqcpc/fewshot/), then evaluate each run on `probe.ways` x `probe.shots`
episodes and write <out_dir>/results.{md,json} and few_shot.png.
`key=value` overrides go to the pretraining config (and so to every learner run).
"""
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from recipes.common import cached, prepare_data, pretrain_once, read_yaml_config, table_main
from seqcpc import modalities
from seqcpc.config import load_config, with_overrides
from seqcpc.errors import ConfigError
from seqcpc.objectives import registry
from seqcpc.eval.report import write_report
from seqcpc.fewshot.evaluate import (describe, episode_sets, evaluate_learner, frozen_rows, plot_shots,
                                     score_table)
from seqcpc.train.checkpoint import load_model


@dataclass
class TableConfig:
    pretrain: str = ""  # the seqcpc config of the data and the CPC run
    overrides: list[str] = field(default_factory=list)  # key=value overrides of that config (e.g. probe.episodes)
    out_dir: str = "runs/fewshot"
    methods: list[str] = field(default_factory=lambda: ["protonet", "matching", "maml"])
    inits: list[str] = field(default_factory=lambda: ["scratch", "cpc"])
    learner: list[str] = field(default_factory=list)  # key=value overrides of every learner run
    per_method: dict = field(default_factory=dict)  # method -> more key=value overrides


def read_table_config(path) -> TableConfig:
    table = read_yaml_config(path, TableConfig)
    learners = [n for n in registry.names() if registry.get(n).episodic]
    unknown = [m for m in table.methods + list(table.per_method) if m not in learners]
    bad_init = [i for i in table.inits if i not in ("scratch", "cpc")]
    if unknown or bad_init or not table.pretrain:
        raise ConfigError(f"{path}: needs `pretrain:` (a seqcpc config), methods among {', '.join(learners)} "
                          f"(got {unknown or 'ok'}) and inits among scratch, cpc (got {bad_init or 'ok'})")
    return table


def timed(fn, *args) -> dict:
    t0 = time.time()
    return {"scores": fn(*args), "seconds": time.time() - t0}


def run_table(table: TableConfig, overrides: list[str], log=print) -> dict:
    cfg = load_config(table.pretrain, [*table.overrides, *overrides])
    prepare_data(cfg.prepare)
    out = Path(table.out_dir)
    cpc_ckpt = pretrain_once(cfg)
    runs = {}
    for method in table.methods:
        for init in table.inits:
            name = f"{method} ({'from CPC' if init == 'cpc' else 'from scratch'})"
            log(f"== meta-training {name}")
            run_cfg = with_overrides(cfg, [f"objective.name={method}", f"train.out_dir={out / f'{method}_{init}'}",
                                           f"train.init_from={cpc_ckpt if init == 'cpc' else chr(39) * 2}",
                                           *table.learner, *table.per_method.get(method, [])])
            runs[name] = pretrain_once(run_cfg)

    log("== episodic evaluation")
    entry = modalities.get(cfg.model.modality)
    data = entry.episode_data(cfg, log)
    sets = episode_sets(data, cfg.probe, cfg.train.seed, log)
    rows, extra = {}, {}
    for name, ckpt in runs.items():
        run_dir = ckpt.parent.parent
        scored = cached(run_dir / "episodes.json",
                        lambda: timed(evaluate_learner, load_model(ckpt), data, sets, log, name))
        rows[name] = scored["scores"]
        train_s = json.loads((run_dir / "summary.json").read_text())["elapsed_s"]
        extra[name] = {"meta-training": f"{train_s / 60:.1f} min", "test": f"{scored['seconds'] / 60:.1f} min"}
    rows.update(cached(out / "frozen.json",
                       lambda: frozen_rows(entry.frozen_features(cfg, load_model(cpc_ckpt)), data, sets, log)))
    table_md = score_table(rows, list(sets), {n: extra.get(n, {"meta-training": "-", "test": "-"}) for n in rows})
    write_report(out, "Few-shot episodes", describe(data, cfg.probe), table_md, rows, log)
    plot_shots(rows, out / "few_shot.png", f"few-shot accuracy ({Path(table.pretrain).stem})")
    return rows


def main(argv=None) -> int:
    return table_main(__doc__, read_table_config, run_table, "fewshot recipe", argv)


if __name__ == "__main__":
    sys.exit(main())
