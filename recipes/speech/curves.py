"""Learning curves of speech recipes: long pretraining runs, probed at a few step counts, beside MFCC.

    python recipes/speech/curves.py --config recipes/speech/curves_cpu.yaml [key=value ...]

The curves config names a seqcpc config (`pretrain:`, with its `prepare:` section), the step counts to probe (the last is
every run's train.max_steps, so the schedule is the long run's) and the runs to compare, each a list of
overrides of that config. For every step count in turn, each run trains up to it (train.stop_at, keeping that
checkpoint: train.keep_steps), then its checkpoint is probed with the config's probes; MFCC and random weights
(the first run's model) are probed once, with the first run's first point. Stop it at any moment (Ctrl-C, a
kill, the end of a session) and run the same command again: a run resumes from its last checkpoint, a point
already probed is not probed again, and the minutes of a point are the run's own (its training seconds, resumed
parts summed, then the probes'). Writes <out_dir>/curves.{md,json} and one plot per measure (against steps and against CPU minutes) as it goes.
"""
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from recipes.common import cached, prepare_data, read_yaml_config, table_main
from seqcpc import modalities
from seqcpc.audio.features import baseline_names
from seqcpc.config import load_config, with_overrides
from seqcpc.errors import ConfigError
from seqcpc.eval.curves import curve_rows, curves_markdown, plot_curves
from seqcpc.files import atomic_write_text
from seqcpc.fields import number
from seqcpc.train.checkpoint import load_model, read_checkpoint
from seqcpc.train.loop import pretrain


@dataclass
class CurvesConfig:
    pretrain: str = ""  # the seqcpc config every run starts from (with its prepare: section)
    steps: list[int] = number([1200, 3000, 6000], min=1)  # points probed; the last is every run's max_steps
    out_dir: str = "runs/speech_curves"
    runs: dict = field(default_factory=lambda: {"default": []})  # name -> overrides of the config


def run_config(curves: CurvesConfig, name: str, overrides: list[str]):
    """The config of one run of the curves: its overrides, its folder, the long schedule, the kept points."""
    if sorted(curves.steps) != curves.steps or len(set(curves.steps)) != len(curves.steps):
        raise ConfigError(f"steps {curves.steps} must rise: each point is a later checkpoint of the same run")
    return load_config(curves.pretrain, [*overrides, f"train.out_dir={Path(curves.out_dir) / name}",
                                       f"train.max_steps={curves.steps[-1]}", f"train.keep_steps={curves.steps}"])


def point(cfg, step: int, first: bool) -> dict:
    """Train the run of `cfg` up to `step` (unless its checkpoint is kept) and probe that checkpoint."""
    ckpt_dir = Path(cfg.train.out_dir) / "checkpoints"
    kept = ckpt_dir / f"step-{step}.ckpt"
    if not kept.is_file():
        resume = (ckpt_dir / "last.ckpt").is_file()
        print(f"== {Path(cfg.train.out_dir).name}: pretraining to step {step}", flush=True)
        pretrain(with_overrides(cfg, [f"train.stop_at={step}"]), resume=resume, overwrite=not resume)
    train_s, load = float(read_checkpoint(kept)["elapsed_s"]), os.getloadavg()  # the minutes mean more on idle cores
    print(f"== {Path(cfg.train.out_dir).name}: probes at step {step}", flush=True)
    start = time.time()
    out = Path(cfg.train.out_dir) / f"probes-{step}"
    results = modalities.get(cfg.model.modality).evaluate(cfg, load_model(kept), out, baselines=first)
    return {"step": step, "train_s": train_s, "probe_s": time.time() - start, "results": results["results"],
            "baselines": baseline_names(cfg) if first else [], "load_average": [round(x, 2) for x in load]}


def run_curves(curves: CurvesConfig, overrides: list[str]) -> None:
    if not curves.pretrain:
        raise ConfigError("pretrain: the curves config must name the seqcpc config of its runs")
    configs = {name: run_config(curves, name, [*overrides, *extra]) for name, extra in curves.runs.items()}
    prepare_data(next(iter(configs.values())).prepare)
    out, points = Path(curves.out_dir), {name: [] for name in configs}
    for i, step in enumerate(curves.steps):  # every run reaches a point before any goes on to the next
        for j, (name, cfg) in enumerate(configs.items()):  # the baselines once: the first run's first point
            points[name].append(cached(out / name / f"point-{step}.json", lambda: point(cfg, step, i == j == 0)))
            rows = curve_rows(points)
            atomic_write_text(out / "curves.md", curves_markdown(rows, curves.pretrain, overrides, curves.runs))
            atomic_write_text(out / "curves.json", json.dumps(rows, indent=1))
            plot_curves(rows, out)
    print(f"curves in {out / 'curves.md'}", flush=True)


if __name__ == "__main__":
    sys.exit(table_main(__doc__, lambda path: read_yaml_config(path, CurvesConfig), run_curves, "speech curves"))
