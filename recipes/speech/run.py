"""The speech recipe end to end: corpus -> CPC pretraining on raw audio -> frozen-feature probes.

    python recipes/speech/run.py --config recipes/speech/cpu.yaml [key=value ...]

The config is a seqcpc config whose `prepare:` section names a data_prep script and its options. Each step is
skipped when its output exists: the corpus preparation is idempotent, a finished pretraining run is kept (a
killed one is resumed), and finished probe results are printed again rather than recomputed.
"""
import sys

from recipes.common import recipe_main

if __name__ == "__main__":
    sys.exit(recipe_main(__doc__))
