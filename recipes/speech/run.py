"""The speech recipe end to end: corpus -> CPC pretraining on raw audio -> frozen-feature probes.

    python recipes/speech/run.py --config recipes/speech/cpu.yaml [key=value ...]

The config is a seqcpc config whose `prepare:` section names a data_prep script and its options. Each step is
skipped when its output exists: the corpus preparation is idempotent, a finished pretraining run is kept (a
killed one is resumed), and finished probe results are printed again rather than recomputed.

With probe.ceiling_steps > 0 the recipe also trains the same encoder and context as a supervised speaker
classifier (objective.name=supervised, same windows, same optimiser, that many steps, in <out_dir>/ceiling) and
probes its frozen features as the table's ceiling row: what labels buy on this corpus with this network.
"""
import sys
from pathlib import Path

from recipes.common import evaluate_once, pretrain_once, recipe_main
from seqcpc.config import Config, with_overrides
from seqcpc.train.checkpoint import load_model


def ceiling_config(cfg: Config) -> Config:
    """The supervised ceiling's run: the CPC run's config with a speaker head instead of CPC's objective."""
    return with_overrides(cfg, ["objective.name=supervised", f"train.out_dir={Path(cfg.train.out_dir) / 'ceiling'}",
                                f"train.max_steps={cfg.probe.ceiling_steps}", "train.stop_at=0", "train.keep_steps=[]"])


def speech_steps(cfg: Config) -> None:
    """Pretrain CPC, then the supervised ceiling (probe.ceiling_steps), then probe both beside the baselines."""
    ckpt, references = pretrain_once(cfg), {}
    if cfg.probe.ceiling_steps:
        print("== supervised ceiling", flush=True)
        references["supervised"] = load_model(pretrain_once(ceiling_config(cfg)))
    evaluate_once(cfg, ckpt, references=references)


if __name__ == "__main__":
    sys.exit(recipe_main(__doc__, steps=speech_steps))
