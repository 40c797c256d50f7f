"""The image recipe end to end: image data set -> CPC v2 patch-grid pretraining -> frozen-feature evaluation
(linear probe, label efficiency against supervised training from scratch, few-shot).

    python recipes/image/run.py --config recipes/image/cpu.yaml [key=value ...]

The config is a seqcpc config whose `prepare:` section names a data_prep script (idx_images or image_folder)
and its options. Each step is skipped when its output exists: the preparation is idempotent, a finished
pretraining run is kept (a killed one is resumed), and finished results are printed again.
"""
import sys

from recipes.common import recipe_main

if __name__ == "__main__":
    sys.exit(recipe_main(__doc__))
