"""The speech recipe end to end: corpus -> CPC pretraining on raw audio -> frozen-feature probes.

    python recipes/speech/run.py --config recipes/speech/cpu.yaml [key=value ...]

The config is a seqcpc config whose `prepare:` section names a data_prep script and its options. Each step is
skipped when its output exists: the corpus preparation is idempotent, a finished pretraining run is kept (a
killed one is resumed), and finished probe results are printed again rather than recomputed.

With probe.ceiling_steps > 0 the recipe also trains the same encoder and context as a supervised speaker
classifier (model.objective=supervised, same windows, same optimiser, that many steps, in <out_dir>/ceiling) and
probes its frozen features as the table's ceiling row: what labels buy on this corpus with this network.
"""
import argparse
import sys
from pathlib import Path

from recipes.common import prepare_data, pretrain_once
from seqcpc.audio.eval import run_speech_probes
from seqcpc.config import Config, load_config, with_overrides
from seqcpc.errors import report_errors
from seqcpc.train.checkpoint import load_model


def ceiling_config(cfg: Config) -> Config:
    """The supervised ceiling's run: the CPC run's config with a speaker head instead of CPC's objective."""
    return with_overrides(cfg, ["model.objective=supervised", "model.online_probe=false", "model.classes=0",
                                f"train.out_dir={Path(cfg.train.out_dir) / 'ceiling'}",
                                f"train.max_steps={cfg.probe.ceiling_steps}"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)

    def run():
        cfg = load_config(args.config, args.overrides)
        prepare_data(cfg.prepare)
        model = load_model(pretrain_once(cfg))
        references = {}
        if cfg.probe.ceiling_steps:
            print("== supervised ceiling", flush=True)
            references["supervised"] = load_model(pretrain_once(ceiling_config(cfg)))
        results = Path(cfg.train.out_dir) / "probes" / "results.md"
        if results.is_file():
            print(f"== probes: done before\n{results.read_text()}", flush=True)
            return
        print("== probes", flush=True)
        run_speech_probes(cfg, model, results.parent, references=references)
        print(f"results, plots and curves in {cfg.train.out_dir}", flush=True)

    return report_errors(run, "speech recipe")


if __name__ == "__main__":
    sys.exit(main())
