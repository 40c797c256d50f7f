"""What every recipe's run.py shares: its config file, its data-preparation step, and pretraining that is
skipped when finished and resumed when killed.

A recipe config is a seqcpc config plus one section naming a data_prep script and its options (`corpus:` for
speech, `dataset:` for images). Each recipe step is skipped when its output exists.
"""
import argparse
import importlib
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for data_prep/

from seqcpc.config import Config, apply_override, resolve  # noqa: E402
from seqcpc.errors import ConfigError, SeqcpcError  # noqa: E402
from seqcpc.pretrain import pretrain  # noqa: E402


def load_recipe_config(path, overrides=(), section: str = "corpus") -> tuple[dict, Config]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    for override in overrides:
        apply_override(data, override)
    prep = data.pop(section, None)
    if not isinstance(prep, dict) or "script" not in prep:
        raise ConfigError(f"{path}: this recipe's config needs a `{section}:` section with `script:` (a module "
                          f"of data_prep/) and its `options:`")
    return prep, resolve(data)


def prepare_data(prep: dict) -> None:
    args = []
    for key, value in prep.get("options", {}).items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    print(f"== data: data_prep.{prep['script']} {' '.join(args)}", flush=True)
    importlib.import_module(f"data_prep.{prep['script']}").main(args)


def pretrain_once(cfg: Config) -> Path:
    """Pretrain unless a finished run is there (a killed one is resumed); returns the checkpoint."""
    out = Path(cfg.train.out_dir)
    ckpt = out / "checkpoints" / "last.ckpt"
    summary = out / "summary.json"
    if summary.is_file() and json.loads(summary.read_text())["step"] >= cfg.train.max_steps:
        print(f"== pretraining: done before ({summary})", flush=True)
    else:
        print("== pretraining", flush=True)
        pretrain(cfg, resume=ckpt.is_file(), overwrite=not ckpt.is_file())
    return ckpt


def probe_once(cfg: Config, ckpt: Path, run_probes) -> None:
    """`run_probes(cfg, model, out_dir)` unless its results are there (then they are printed again)."""
    from seqcpc.checkpoint import load_model

    results = Path(cfg.train.out_dir) / "probes" / "results.md"
    if results.is_file():
        print(f"== probes: done before\n{results.read_text()}", flush=True)
        return
    print("== probes", flush=True)
    run_probes(cfg, load_model(ckpt), results.parent)
    print(f"results, plots and curves in {cfg.train.out_dir}", flush=True)


def recipe_main(doc: str, section: str, run_probes, argv=None) -> int:
    """Parse `--config F key=value ...`, prepare the data, pretrain, then `run_probes(cfg, model, out_dir)`."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    try:
        prep, cfg = load_recipe_config(args.config, args.overrides, section)
        prepare_data(prep)
        probe_once(cfg, pretrain_once(cfg), run_probes)
    except (SeqcpcError, FileNotFoundError) as err:
        print(f"{Path(sys.argv[0]).parent.name} recipe: error: {err}", file=sys.stderr)
        return 1
    return 0
