"""What every recipe's run.py shares: data preparation, pretraining that is skipped when finished and resumed
when killed, and the modality's evaluation, each skipped when its output exists.

A recipe config is a seqcpc config whose `prepare:` section names a data_prep module and its options; it is
read by the one config loader (seqcpc.config.load_config), so a recipe config is checked like any other.
"""
import argparse
import importlib
import json
import sys
from pathlib import Path

import yaml

from seqcpc import modalities
from seqcpc.config import Config, PrepareConfig, StrictLoader, from_dict, load_config
from seqcpc.errors import ConfigError, report_errors
from seqcpc.files import atomic_write_text
from seqcpc.train.checkpoint import load_model
from seqcpc.train.loop import pretrain
from seqcpc.train.steps import last_step


def read_yaml_config(path, cls):
    """A recipe's own config file (e.g. a table config naming a seqcpc config) as dataclass `cls`, with the
    same strict checks as seqcpc configs (unknown keys, wrong types)."""
    try:
        data = yaml.load(Path(path).read_text(), Loader=StrictLoader) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"config {path} cannot be read: {err}") from err
    return from_dict(cls, data)


def cached(path: Path, compute):
    """The JSON at `path`, else compute() written there (so an evaluation is not run twice)."""
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    atomic_write_text(path, json.dumps(result, indent=2))
    return result


def prepare_data(prep: PrepareConfig) -> None:
    if not prep.script:
        raise ConfigError("prepare.script: this recipe's config needs a `prepare:` section naming a module of "
                          "data_prep/ (e.g. espeak_corpus, idx_images) and its `options:`")
    args = []
    for key, value in prep.options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    print(f"== data: data_prep.{prep.script} {' '.join(args)}", flush=True)
    importlib.import_module(f"data_prep.{prep.script}").main(args)


def pretrain_once(cfg: Config) -> Path:
    """Pretrain unless a finished run is there (a killed one is resumed); returns the checkpoint."""
    out = Path(cfg.train.out_dir)
    ckpt = out / "checkpoints" / "last.ckpt"
    summary = out / "summary.json"
    if summary.is_file() and json.loads(summary.read_text())["step"] >= last_step(cfg.train):  # train.stop_at too
        print(f"== pretraining: done before ({summary})", flush=True)
    else:
        print("== pretraining", flush=True)
        pretrain(cfg, resume=ckpt.is_file(), overwrite=not ckpt.is_file())
    return ckpt


def evaluate_once(cfg: Config, ckpt: Path, **extra) -> None:
    """The modality's evaluation of the checkpoint (with `extra` keyword arguments, e.g. the speech evaluation's
    reference networks), unless its results are there (then they are printed again)."""
    results = Path(cfg.train.out_dir) / "probes" / "results.md"
    if results.is_file():
        print(f"== probes: done before\n{results.read_text()}", flush=True)
        return
    print("== probes", flush=True)
    modalities.get(cfg.model.modality).evaluate(cfg, load_model(ckpt), results.parent, **extra)
    print(f"results, plots and curves in {cfg.train.out_dir}", flush=True)


def table_main(doc: str, read_table, run_table, name: str, argv=None) -> int:
    """Parse `--config TABLE key=value ...` of a table recipe, read its table config and run it."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the table config")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the pretraining config")
    args = parser.parse_args(argv)
    return report_errors(lambda: run_table(read_table(args.config), args.overrides), name)


def pretrain_and_evaluate(cfg: Config) -> None:
    evaluate_once(cfg, pretrain_once(cfg))


def recipe_main(doc: str, argv=None, steps=pretrain_and_evaluate) -> int:
    """Parse `--config F key=value ...`, prepare the data, then run the recipe's `steps` on the config (by
    default: pretrain, then evaluate)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)

    def run():
        cfg = load_config(args.config, args.overrides)
        prepare_data(cfg.prepare)
        steps(cfg)

    return report_errors(run, f"{Path(sys.argv[0]).parent.name} recipe")
