"""The image benchmark: CPC v2 beside pretext-task baselines (rotation, jigsaw), random weights, raw pixels and
the same encoder trained with labels, every number the mean ± std over seeds.

    python recipes/image/table.py --config recipes/image/table_cpu.yaml [key=value ...]

The table config names a seqcpc config (`pretrain:`, with its `prepare:` and `probe:` sections), the seeds, and
the pretraining runs (`runs:` row name -> overrides of that config; the first is the main row). For each seed:
pretrain every run (train.seed = the seed; <out_dir>/seed<s>/<name>), then probe all of them together with the
seed's probes (label subsets, random weights, the supervised baseline) into <out_dir>/seed<s>/probes. Then
<out_dir>/results.{md,json} and label_efficiency.png summarise every seed that is done.

The protocol that keeps it affordable: each model's features are embedded once into <out_dir>/features (keyed by
weights and settings, so a seed probed again reads them back); the supervised baseline's budget at each label
fraction is chosen once, by the first seed, and kept in <out_dir>/supervised_schedule.json (.png: the validation
curves) for the others; the largest label fraction's baseline can be limited to `supervised_full_seeds`. Every
step is skipped when done, a killed pretraining is resumed, and a killed evaluation keeps the features and
supervised baselines it finished; running the command again finishes the rest.
`key=value` overrides go to the pretraining config (and so to every run).
"""
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from recipes.common import prepare_data, pretrain_once, read_yaml_config, table_main
from seqcpc.config import load_config, with_overrides
from seqcpc.errors import ConfigError
from seqcpc.files import atomic_write_text
from seqcpc.image.eval import PROTOCOL, run_image_probes
from seqcpc.image.summary import mean_std, seed_summary, write_seed_report
from seqcpc.train.checkpoint import load_model


@dataclass
class TableConfig:
    pretrain: str = ""  # the seqcpc config of the data, the pretraining and the probes
    overrides: list[str] = field(default_factory=list)  # key=value overrides of that config
    out_dir: str = "runs/image_table"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    runs: dict = field(default_factory=lambda: {"cpc": [], "rotation": ["objective.name=rotation"],
                                                "jigsaw": ["objective.name=jigsaw"]})
    # seeds whose supervised baseline also trains on the largest label fraction, the costliest ([]: every seed)
    supervised_full_seeds: list[int] = field(default_factory=list)


def read_table_config(path) -> TableConfig:
    table = read_yaml_config(path, TableConfig)
    if not table.pretrain or not table.runs or not table.seeds:
        raise ConfigError(f"{path}: needs `pretrain:` (a seqcpc config), `seeds:` and `runs:` (row name -> list "
                          f"of key=value overrides)")
    bad = [name for name, o in table.runs.items() if not isinstance(o, list) or name in ("random_init", "pixels")]
    if bad:
        raise ConfigError(f"{path}: runs {bad}: each run is a list of key=value overrides, and random_init and "
                          f"pixels are names of rows every table has")
    return table


def seed_overrides(cfg, table: TableConfig, seed: int) -> list[str]:
    """The probe settings every seed shares (the feature cache, the supervised schedule), and the supervised
    fractions of a seed outside table.supervised_full_seeds."""
    out = Path(table.out_dir)
    overrides = [f"probe.feature_cache={out / 'features'}",
                 f"probe.supervised_schedule={out / 'supervised_schedule.json'}"]
    if table.supervised_full_seeds and seed not in table.supervised_full_seeds:
        p = cfg.probe
        largest = max(p.label_fractions)
        fractions = [f for f in p.supervised_fractions or p.label_fractions if f != largest]
        if not fractions:  # an empty list would mean every fraction
            raise ConfigError(f"supervised_full_seeds: seed {seed} would train no supervised baseline; give it a "
                              f"label fraction below {largest:g} or list it in supervised_full_seeds")
        overrides.append(f"probe.supervised_fractions={fractions}")
    return overrides


def run_seed(cfg, table: TableConfig, seed: int, log=print) -> dict:
    """Pretrain every run with this seed, then probe them all; returns the seed's results (cached) with the
    minutes its probes took (probes/minutes.json)."""
    seed_dir = Path(table.out_dir) / f"seed{seed}"
    results, minutes = seed_dir / "probes" / "results.json", seed_dir / "probes" / "minutes.json"
    # done: probed with this protocol, every run a row (a run added later probes the seed again, the other runs'
    # features and supervised baselines read back from their caches)
    previous = json.loads(results.read_text()) if results.is_file() else {}
    done = previous.get("protocol") == PROTOCOL and set(table.runs) <= set(previous["linear"])
    cfgs, ckpts = {}, {}
    for name, overrides in table.runs.items():
        cfgs[name] = with_overrides(cfg, [f"train.seed={seed}", f"train.out_dir={seed_dir / name}", *overrides,
                                          *seed_overrides(cfg, table, seed)])
        if not done:
            log(f"== seed {seed}: {name}")
            ckpts[name] = pretrain_once(cfgs[name])
    if done:
        log(f"== seed {seed}: done before ({results})")
    else:
        log(f"== seed {seed}: probes")
        main, *others = table.runs
        t0 = time.time()
        run_image_probes(cfgs[main], load_model(ckpts[main]), seed_dir / "probes", log, main_name=main,
                         others={name: load_model(ckpts[name]) for name in others})
        log(f"== seed {seed}: probes took {(time.time() - t0) / 60:.1f} min")
        atomic_write_text(minutes, json.dumps({"minutes": round((time.time() - t0) / 60, 1)}))
    took = json.loads(minutes.read_text())["minutes"] if minutes.is_file() else None  # None: killed before it
    return {**json.loads(results.read_text()), "probe_minutes": took}


def budget_choices(path: Path) -> dict:
    """{fraction: {epochs (chosen), tried (budgets: validation accuracy), rising}} of the schedule file."""
    schedule = json.loads(path.read_text()) if path.is_file() else {}
    return {f: {"epochs": e["epochs"], "rising": e["rising"],
                "tried": ", ".join(f"{r['budget']:g}: {100 * r['val_acc']:.1f}%" for r in e["runs"])}
            for f, e in sorted(schedule.items(), key=lambda kv: float(kv[0]))}


def run_table(table: TableConfig, overrides: list[str], log=print) -> dict:
    cfg = load_config(table.pretrain, [*table.overrides, *overrides])
    prepare_data(cfg.prepare)
    out = Path(table.out_dir)
    per_seed = {seed: run_seed(cfg, table, seed, log) for seed in table.seeds}
    minutes = {name: [json.loads((out / f"seed{s}" / name / "summary.json").read_text())["elapsed_s"] / 60
                      for s in table.seeds] for name in table.runs}
    summary = seed_summary(per_seed)
    summary["pretraining_minutes"] = minutes
    summary["probe_minutes"] = mean_std([r["probe_minutes"] for r in per_seed.values() if r["probe_minutes"]])
    summary["supervised_schedule"] = budget_choices(out / "supervised_schedule.json")
    embedding = sum(m["mean"] for m in summary["embedding_minutes"].values())
    facts = (f"Seeds {table.seeds}; pretraining per run ({cfg.train.max_steps} steps of {cfg.data.batch_size} "
             f"images): " + ", ".join(f"{n} {sum(m) / len(m):.1f} min" for n, m in minutes.items()) +
             f"; probes per seed {summary['probe_minutes']['mean']:.1f} min (of which embedding {embedding:.1f} "
             f"min when first embedded). Supervised budgets (epochs), chosen on a validation set by the first seed "
             f"probed ({out / 'supervised_schedule.json'}, .png): " +
             "; ".join(f"{100 * float(f):g}% {c['epochs']:g} of {c['tried']}" + (" (still rising)" * c["rising"])
                       for f, c in summary["supervised_schedule"].items()) +
             f". Config: {table.pretrain} {' '.join([*table.overrides, *overrides])}".rstrip())
    write_seed_report(summary, out, facts, log)
    return summary


def main(argv=None) -> int:
    return table_main(__doc__, read_table_config, run_table, "image table recipe", argv)


if __name__ == "__main__":
    sys.exit(main())
