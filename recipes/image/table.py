"""The image benchmark: CPC v2 beside pretext-task baselines (rotation, jigsaw), random weights, raw pixels and
the same encoder trained with labels, every number the mean ± std over seeds.

    python recipes/image/table.py --config recipes/image/table_cpu.yaml [key=value ...]

The table config names a seqcpc config (`pretrain:`, with its `prepare:` and `probe:` sections), the seeds, and
the pretraining runs (`runs:` row name -> overrides of that config; the first is the main row). For each seed:
pretrain every run (train.seed = the seed; <out_dir>/seed<s>/<name>), then probe all of them together with the
seed's probes (label subsets, random weights, the supervised baseline to convergence) into
<out_dir>/seed<s>/probes. Then <out_dir>/results.{md,json} and label_efficiency.png summarise every seed that is
done. Every step is skipped when done, a killed pretraining is resumed, and a killed evaluation keeps the
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
from seqcpc.image.eval import run_image_probes, seed_summary, write_seed_report
from seqcpc.train.checkpoint import load_model


@dataclass
class TableConfig:
    pretrain: str = ""  # the seqcpc config of the data, the pretraining and the probes
    overrides: list[str] = field(default_factory=list)  # key=value overrides of that config
    out_dir: str = "runs/image_table"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    runs: dict = field(default_factory=lambda: {"cpc": [], "rotation": ["objective.name=rotation"],
                                                "jigsaw": ["objective.name=jigsaw"]})


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


def run_seed(cfg, table: TableConfig, seed: int, log=print) -> dict:
    """Pretrain every run with this seed, then probe them all; returns the seed's results (cached)."""
    seed_dir = Path(table.out_dir) / f"seed{seed}"
    results = seed_dir / "probes" / "results.json"
    cfgs, ckpts = {}, {}
    for name, overrides in table.runs.items():
        cfgs[name] = with_overrides(cfg, [f"train.seed={seed}", f"train.out_dir={seed_dir / name}", *overrides])
        if not results.is_file():
            log(f"== seed {seed}: {name}")
            ckpts[name] = pretrain_once(cfgs[name])
    if results.is_file():
        log(f"== seed {seed}: done before ({results})")
        return json.loads(results.read_text())
    log(f"== seed {seed}: probes")
    main, *others = table.runs
    t0 = time.time()
    run_image_probes(cfgs[main], load_model(ckpts[main]), seed_dir / "probes", log, main_name=main,
                     others={name: load_model(ckpts[name]) for name in others})
    log(f"== seed {seed}: probes took {(time.time() - t0) / 60:.1f} min")
    return json.loads(results.read_text())


def run_table(table: TableConfig, overrides: list[str], log=print) -> dict:
    cfg = load_config(table.pretrain, [*table.overrides, *overrides])
    prepare_data(cfg.prepare)
    out = Path(table.out_dir)
    per_seed = {seed: run_seed(cfg, table, seed, log) for seed in table.seeds}
    minutes = {name: [json.loads((out / f"seed{s}" / name / "summary.json").read_text())["elapsed_s"] / 60
                      for s in table.seeds] for name in table.runs}
    facts = (f"Seeds {table.seeds}; pretraining per run ({cfg.train.max_steps} steps of {cfg.data.batch_size} "
             f"images): " + ", ".join(f"{n} {sum(m) / len(m):.1f} min" for n, m in minutes.items()) +
             f". Config: {table.pretrain} {' '.join([*table.overrides, *overrides])}".rstrip())
    summary = seed_summary(per_seed)
    summary["pretraining_minutes"] = minutes
    write_seed_report(summary, out, facts, log)
    return summary


def main(argv=None) -> int:
    return table_main(__doc__, read_table_config, run_table, "image table recipe", argv)


if __name__ == "__main__":
    sys.exit(main())
