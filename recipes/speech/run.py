"""The speech recipe end to end: corpus -> CPC pretraining on raw audio -> frozen-feature probes.

    python recipes/speech/run.py --config recipes/speech/cpu.yaml [key=value ...]

The config is a seqcpc config plus a `corpus:` section naming a data_prep script and its options. Each step
is skipped when its output exists: the corpus preparation is idempotent, a finished pretraining run is kept
(a killed one is resumed), and finished probe results are printed again rather than recomputed.
"""
import argparse
import importlib
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # for data_prep/

from seqcpc.checkpoint import load_model  # noqa: E402
from seqcpc.config import Config, apply_override, resolve  # noqa: E402
from seqcpc.errors import ConfigError, SeqcpcError  # noqa: E402
from seqcpc.pretrain import pretrain  # noqa: E402
from seqcpc.speech_eval import run_speech_probes  # noqa: E402


def load_recipe_config(path, overrides=()) -> tuple[dict, Config]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    for override in overrides:
        apply_override(data, override)
    corpus = data.pop("corpus", None)
    if not isinstance(corpus, dict) or "script" not in corpus:
        raise ConfigError(f"{path}: a speech recipe config needs a `corpus:` section with `script:` "
                          f"(espeak_corpus, librispeech or folder) and its options")
    return corpus, resolve(data)


def prepare_corpus(corpus: dict) -> None:
    args = []
    for key, value in corpus.get("options", {}).items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    print(f"== corpus: data_prep.{corpus['script']} {' '.join(args)}", flush=True)
    importlib.import_module(f"data_prep.{corpus['script']}").main(args)


def run(cfg: Config) -> None:
    out = Path(cfg.train.out_dir)
    ckpt = out / "checkpoints" / "last.ckpt"
    summary = out / "summary.json"
    if summary.is_file() and json.loads(summary.read_text())["step"] >= cfg.train.max_steps:
        print(f"== pretraining: done before ({summary})", flush=True)
    else:
        print("== pretraining", flush=True)
        pretrain(cfg, resume=ckpt.is_file(), overwrite=not ckpt.is_file())
    results = out / "probes" / "results.md"
    if results.is_file():
        print(f"== probes: done before\n{results.read_text()}", flush=True)
        return
    print("== probes", flush=True)
    run_speech_probes(cfg, load_model(ckpt), cfg.data.manifest, out / "probes")
    print(f"results, plots and curves in {out}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    try:
        corpus, cfg = load_recipe_config(args.config, args.overrides)
        prepare_corpus(corpus)
        run(cfg)
    except (SeqcpcError, FileNotFoundError) as err:
        print(f"speech recipe: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
