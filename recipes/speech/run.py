"""The speech recipe end to end: corpus -> CPC pretraining on raw audio -> frozen-feature probes.

    python recipes/speech/run.py --config recipes/speech/cpu.yaml [key=value ...]

The config is a seqcpc config plus a `corpus:` section naming a data_prep script and its options. Each step
is skipped when its output exists: the corpus preparation is idempotent, a finished pretraining run is kept
(a killed one is resumed), and finished probe results are printed again rather than recomputed.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from recipes.common import recipe_main  # noqa: E402
from seqcpc.speech_eval import run_speech_probes  # noqa: E402


def run_probes(cfg, model, out_dir) -> None:
    run_speech_probes(cfg, model, cfg.data.manifest, out_dir)


if __name__ == "__main__":
    sys.exit(recipe_main(__doc__, "corpus", run_probes))
